// xpi dashboard, sign-in (docs/dashboard.md, "Sign-in through the agency's identity provider").
// Served behind the API (/<stage>/dashboard/), the page signs in itself: the user pool's hosted sign-in
// (OAuth 2.0 authorization code with PKCE S256, federated to the agency's provider), the identity pool's
// short-lived credentials of the role the user's group maps to, and every /v1/... call SigV4-signed here
// with them (WebCrypto). sign-in.json comes from the stack (DashboardPageFunction's environment); with the
// sign-in off it says so. Served by the signing proxy (`xpi dashboard`, at /), it does nothing.
"use strict";

(() => {
  const marker = location.pathname.indexOf("/dashboard/");
  if (marker < 0) return; // the signing proxy signs
  const apiBase = location.pathname.slice(0, marker); // "/<stage>"
  const callback = `${location.origin}${apiBase}/dashboard/index.html`;
  const store = sessionStorage; // this tab only, gone with it
  const encoder = new TextEncoder();
  const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const sha256 = async (data) => crypto.subtle.digest("SHA-256", typeof data === "string" ? encoder.encode(data) : data);
  const hmac = async (key, text) => crypto.subtle.sign(
    "HMAC", await crypto.subtle.importKey("raw", typeof key === "string" ? encoder.encode(key) : key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]), encoder.encode(text));
  const rfc3986 = (text) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

  function banner(text, state) {
    document.body.dataset.signIn = state;
    let element = document.getElementById("sign-in-state");
    if (!element) {
      element = document.createElement("span");
      element.id = "sign-in-state";
      element.className = "status";
      (document.querySelector("header") || document.body).appendChild(element);
    }
    element.textContent = text;
  }

  async function identityPool(config, target, body) {
    const response = await fetch(config.identityPoolUrl, {
      method: "POST",
      headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": `AWSCognitoIdentityService.${target}` },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${answer.__type || response.status}: ${answer.message || ""}`);
    return answer;
  }

  async function startSignIn(config) {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(48)));
    const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
    store.setItem("xpi-pkce", JSON.stringify({ verifier, state, back: location.pathname + location.search }));
    const query = new URLSearchParams({
      response_type: "code", client_id: config.clientId, redirect_uri: callback, scope: "openid profile",
      identity_provider: config.identityProvider, state, code_challenge: b64url(await sha256(verifier)),
      code_challenge_method: "S256",
    });
    location.assign(`${config.signInUrl}/oauth2/authorize?${query}`);
    return new Promise(() => {}); // the page is leaving
  }

  async function finishSignIn(config, params) {
    const pending = JSON.parse(store.getItem("xpi-pkce") || "{}");
    store.removeItem("xpi-pkce");
    history.replaceState(null, "", location.pathname); // the code out of the address bar and history
    if (!pending.verifier || params.get("state") !== pending.state) throw new Error("sign-in state mismatch");
    const response = await fetch(`${config.signInUrl}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", client_id: config.clientId, code: params.get("code"),
        redirect_uri: callback, code_verifier: pending.verifier,
      }),
    });
    const tokens = await response.json();
    if (!response.ok) throw new Error(`sign-in: ${tokens.error || response.status}`);
    const claims = JSON.parse(atob(tokens.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const user = { name: claims["cognito:username"] || "", role: claims.xpi_role || "" };
    store.setItem("xpi-user", JSON.stringify(user));
    const logins = { [config.userPoolProvider]: tokens.id_token };
    const { IdentityId } = await identityPool(config, "GetId", { IdentityPoolId: config.identityPoolId, Logins: logins });
    const { Credentials } = await identityPool(config, "GetCredentialsForIdentity", { IdentityId, Logins: logins });
    store.setItem("xpi-credentials", JSON.stringify(Credentials));
    if (pending.back && pending.back !== location.pathname) {
      location.replace(pending.back);
      return new Promise(() => {});
    }
    return Credentials;
  }

  async function signIn() {
    const config = await (await fetch("sign-in.json")).json();
    if (config.signIn !== "oidc") {
      const reason = "sign-in is off in this deployment (DashboardSignIn=none): use `xpi dashboard`";
      banner(reason, "off");
      throw new Error(reason);
    }
    const params = new URLSearchParams(location.search);
    let credentials;
    try {
      if (params.has("code")) credentials = await finishSignIn(config, params);
      else credentials = JSON.parse(store.getItem("xpi-credentials") || "null");
    } catch (error) {
      store.removeItem("xpi-credentials");
      banner(`not signed in: ${error.message}`, "refused");
      throw error;
    }
    if (!credentials || credentials.Expiration * 1000 < Date.now() + 60000) return startSignIn(config);
    const user = JSON.parse(store.getItem("xpi-user") || "{}");
    banner(`signed in: ${user.name} (${user.role})`, "ok");
    document.body.dataset.role = user.role || "";
    return { ...credentials, region: config.region };
  }

  async function sign(credentials, method, url, body) {
    const now = new Date().toISOString().replace(/[:-]|\.\d{3}/g, "");
    const day = now.slice(0, 8);
    const path = url.pathname.split("/").map((segment) => rfc3986(segment)).join("/");
    const query = url.search.slice(1).split("&").filter(Boolean)
      .map((pair) => { const at = pair.indexOf("="); return at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)]; })
      .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : (a[0] < b[0] ? -1 : 1)))
      .map(([k, v]) => `${k}=${v}`).join("&");
    const headers = { host: url.host, "x-amz-date": now, "x-amz-security-token": credentials.SessionToken };
    const signed = Object.keys(headers).sort();
    const canonical = [method, path, query, ...signed.map((h) => `${h}:${headers[h]}`), "", signed.join(";"),
      hex(await sha256(body || ""))].join("\n");
    const scope = `${day}/${credentials.region}/execute-api/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", now, scope, hex(await sha256(canonical))].join("\n");
    let key = await hmac(`AWS4${credentials.SecretKey}`, day);
    for (const part of [credentials.region, "execute-api", "aws4_request"]) key = await hmac(key, part);
    return {
      "X-Amz-Date": now,
      "X-Amz-Security-Token": credentials.SessionToken,
      Authorization: `AWS4-HMAC-SHA256 Credential=${credentials.AccessKeyId}/${scope}, SignedHeaders=${signed.join(";")}, Signature=${hex(await hmac(key, toSign))}`,
    };
  }

  const ready = signIn();
  ready.catch(() => {});
  const plainFetch = window.fetch.bind(window);
  window.fetch = async (input, init = {}) => {
    if (typeof input !== "string" || !input.startsWith("/v1/")) return plainFetch(input, init);
    const credentials = await ready;
    const url = new URL(apiBase + input, location.origin);
    const method = (init.method || "GET").toUpperCase();
    const body = typeof init.body === "string" ? init.body : "";
    const headers = { ...(init.headers || {}), ...(await sign(credentials, method, url, body)) };
    return plainFetch(url.toString(), { ...init, headers });
  };
})();
