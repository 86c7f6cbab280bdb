// The local OIDC provider the dashboard's sign-in is tested against: panva's oidc-provider (OpenID
// certified), pinned in package-lock.json, with a plain login page (user, password, optional one-time
// code) over the users of a JSON file. Usage:
//   XPI_IDP_CLIENT_SECRET=... node tools/idp/server.mjs [--port 0] --users users.json --client-id ID --redirect-uri URI
// users.json: {"<username>": {"password": "...", "groups": ["xpi-operators"], "otp": "123456"?}}.
// The ID token carries `groups` and `amr` (["pwd"], or ["pwd", "otp"] after a correct one-time code).
// Prints one JSON line {"issuer": ...} on stdout once listening; stops on SIGTERM or when stdin closes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    users: { type: 'string' },
    'client-id': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
  },
});
const users = JSON.parse(fs.readFileSync(args.users, 'utf8'));
const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Agency sign-in</title></head><body>
<h1>Agency sign-in</h1>${message ? `<p id="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<label>One-time code <input id="otp" name="otp" inputmode="numeric"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

function start(port) {
  const server = http.createServer();
  server.listen(Number(port), '127.0.0.1', () => {
    const issuer = `http://127.0.0.1:${server.address().port}`;
    const provider = new Provider(issuer, {
      clients: [{
        client_id: args['client-id'],
        // Cognito's user pool is a confidential client: its secret (XPI_IDP_CLIENT_SECRET), and PKCE (S256)
        client_secret: process.env.XPI_IDP_CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_post',
        redirect_uris: args['redirect-uri'],
        response_types: ['code'],
        grant_types: ['authorization_code'],
      }],
      jwks: { keys: [{ ...signingKey, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' }] },
      cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
      pkce: { required: () => true },
      scopes: ['openid', 'profile', 'groups'],
      claims: { openid: ['sub', 'amr'], profile: ['name'], groups: ['groups'] }, // amr: how the user signed in
      conformIdTokenClaims: false, // the scopes' claims in the ID token, as Cognito's federation reads them
      features: { devInteractions: { enabled: false } },
      interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
      // First-party client: what it asks is granted (no consent page).
      loadExistingGrant: async (ctx) => {
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
        grant.addOIDCScope('openid profile groups');
        await grant.save();
        return grant;
      },
      findAccount: async (ctx, id) => users[id] && {
        accountId: id,
        claims: async () => ({ sub: id, name: id, groups: users[id].groups || [] }),
      },
      ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
    });
    provider.proxy = false;
    const callback = provider.callback();
    server.on('request', async (req, res) => {
      const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(req.url.split('?')[0]);
      if (!match) return callback(req, res);
      try {
        const details = await provider.interactionDetails(req, res);
        if (details.uid !== match[1]) throw new Error('interaction mismatch');
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('Content-Security-Policy', "default-src 'none'; form-action 'self' http://127.0.0.1:*");
        if (!match[2]) return res.end(loginPage(details.uid));
        const form = await readForm(req);
        const user = users[form.username];
        const good = user && crypto.timingSafeEqual(
          crypto.createHash('sha256').update(String(form.password)).digest(),
          crypto.createHash('sha256').update(String(user.password)).digest(),
        );
        if (!good) return res.end(loginPage(details.uid, 'Wrong user or password.'));
        const amr = user.otp && form.otp === user.otp ? ['pwd', 'otp'] : ['pwd'];
        await provider.interactionFinished(req, res, { login: { accountId: form.username, amr } }, { mergeWithLastSubmission: false });
      } catch (error) {
        res.statusCode = 400;
        res.end(`sign-in failed: ${escape(error.message)}`);
      }
    });
    process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  });
  return server;
}

const server = start(args.port);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
