"""The dashboard's sign-in on the local stack (template parameter DashboardSignIn=oidc): a real OIDC
provider run locally, and the parts of Cognito moto lacks (docs/local-stack.md, gap 35).

- `LocalIdentityProvider`: the agency's provider, played by panva's `oidc-provider` (npm, pinned in
  tools/idp/package-lock.json, installed by `make idp`), with test users in groups (one with a one-time
  code), each with a random password made at start (the state file's `sign_in.users`).
- `LocalCognito`: what the user pool's hosted UI and the identity pool do, written from their documented
  behaviour, on one loopback port:
  - `GET /oauth2/authorize`: the page's authorization code request (PKCE S256 required, the client id and
    callback of DashboardUserPoolClient); sends the browser on to the provider's own sign-in page (code
    flow with PKCE and the client's secret, read from Secrets Manager as CloudFormation resolves it);
  - `GET /oauth2/idpresponse`: the provider's code exchanged, its ID token verified against its JWKS
    (signature, issuer, audience, expiry, nonce), its `groups` and `amr` claims mapped to custom:groups
    and custom:amr (DashboardIdentityProvider's AttributeMapping), the pre token generation trigger run
    (DashboardSignInFunction, through the Lambda service: the deployed code), and a code given back;
  - `POST /oauth2/token`: that code for the user pool's ID token (RS256, one hour), once, with the PKCE
    verifier;
  - `POST /` `AWSCognitoIdentityService.GetId` / `GetCredentialsForIdentity` (the enhanced flow): the ID
    token verified, the identity pool's rules (DashboardIdentityPoolRoles, as deployed in the template)
    applied, first match wins, no match refused (AmbiguousRoleResolution Deny); the role's trust policy
    must let cognito-identity.amazonaws.com assume it with sts:AssumeRoleWithWebIdentity for this pool;
    then the session is minted in moto's STS (AssumeRoleWithWebIdentity, one hour), whose keys the local
    API Gateway and moto's IAM then know as that role's session: its policies decide every call.
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

IDP_DIR = Path(__file__).resolve().parents[2] / "idp"  # tools/idp
IDP_CLIENT_ID = "xpi-user-pool"
COGNITO_IDENTITY = "cognito-identity.amazonaws.com"
SESSION_SECONDS = 3600  # the identity pool's credentials, and the user pool's ID token
CODE_SECONDS = 60
# The test users: name -> groups; `admin` also has a one-time code (amr ["pwd", "otp"] when given).
TEST_USERS = {
    "olivia.operator": ["xpi-operators"],
    "avery.auditor": ["xpi-auditors"],
    "ada.admin": ["xpi-admins"],
    "nora.nogroup": ["payroll"],
}


def idp_installed() -> bool:
    return (IDP_DIR / "node_modules" / "oidc-provider").is_dir() and shutil.which("node") is not None


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class LocalIdentityProvider:
    """`node tools/idp/server.mjs`: the provider's issuer URL once it listens; stopped with the stack."""

    work_dir: Path
    redirect_uri: str
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    issuer: str = ""
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.users = {
            name: {"password": secrets.token_urlsafe(12), "groups": groups}
            | ({"otp": f"{secrets.randbelow(10**6):06d}"} if name == "ada.admin" else {})
            for name, groups in TEST_USERS.items()
        }
        users_file = self.work_dir / "idp-users.json"
        users_file.parent.mkdir(parents=True, exist_ok=True)
        users_file.write_text(json.dumps(self.users))
        users_file.chmod(0o600)
        self._process = subprocess.Popen(
            [
                str(shutil.which("node")),
                str(IDP_DIR / "server.mjs"),
                "--users",
                str(users_file),
                "--client-id",
                IDP_CLIENT_ID,
                "--redirect-uri",
                self.redirect_uri,
            ],
            stdin=subprocess.PIPE,  # closed with the stack: the provider stops
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "XPI_IDP_CLIENT_SECRET": self.client_secret},
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the local OIDC provider did not start (make idp)")
        self.issuer = str(json.loads(line)["issuer"])
        return self.issuer

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


@dataclass(frozen=True)
class RoleRule:
    claim: str
    value: str
    role_arn: str


def role_rules(template: dict[str, Any], resolve: Callable[[Any], Any]) -> list[RoleRule]:
    """DashboardIdentityPoolRoles' rules, in order (the first that matches gives the role)."""
    attachment = template["Resources"]["DashboardIdentityPoolRoles"]["Properties"]
    rules: list[RoleRule] = []
    for mapping in attachment["RoleMappings"].values():
        assert mapping["Type"] == "Rules"
        assert mapping["AmbiguousRoleResolution"] == "Deny"
        for rule in mapping["RulesConfiguration"]["Rules"]:
            assert rule["MatchType"] == "Equals"
            rules.append(RoleRule(rule["Claim"], rule["Value"], str(resolve(rule["RoleARN"]))))
    return rules


def matching_role(rules: list[RoleRule], claims: dict[str, Any]) -> str | None:
    return next((r.role_arn for r in rules if str(claims.get(r.claim, "")) == r.value), None)


def trusts_identity_pool(trust_policy: dict[str, Any], identity_pool_id: str) -> bool:
    """The role lets cognito-identity.amazonaws.com assume it with a web identity of this pool's."""
    statements = trust_policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        federated = (statement.get("Principal") or {}).get("Federated", [])
        audience = (statement.get("Condition") or {}).get("StringEquals", {}).get(f"{COGNITO_IDENTITY}:aud")
        if (
            statement.get("Effect") == "Allow"
            and "sts:AssumeRoleWithWebIdentity" in (actions if isinstance(actions, list) else [actions])
            and COGNITO_IDENTITY in (federated if isinstance(federated, list) else [federated])
            and audience == identity_pool_id
        ):
            return True
    return False


class SignInRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class LocalCognito:
    """The user pool's hosted UI and token endpoint, and the identity pool (module docstring)."""

    region: str
    # Set once the provider, the stack and its API are up (the provider needs this server's URL first).
    issuer: str = ""  # the agency provider's
    idp_client_secret: str = field(default="", repr=False)
    dashboard_url: str = ""  # the app client's one callback URL
    rules: list[RoleRule] = field(default_factory=list)
    run_trigger: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # pre token generation
    role_trust: Callable[[str], dict[str, Any]] | None = None  # role ARN -> its trust policy
    mint_session: Callable[[str, str], dict[str, str]] | None = None  # (role ARN, session) -> keys
    user_pool_id: str = ""
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex[:26])
    identity_pool_id: str = ""
    _server: ThreadingHTTPServer | None = None
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # provider state -> page request
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # our code -> claims and PKCE
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": uuid.uuid4().hex}))
    _provider: dict[str, Any] = field(default_factory=dict)  # the provider's discovery document
    _provider_keys: KeySet | None = None

    def __post_init__(self) -> None:
        self.user_pool_id = self.user_pool_id or f"{self.region}_{secrets.token_hex(5)}"
        self.identity_pool_id = self.identity_pool_id or f"{self.region}:{uuid.uuid4()}"

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def provider_name(self) -> str:  # the user pool as an identity pool provider (Logins key)
        return f"cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def dashboard_origin(self) -> str:
        parts = urllib.parse.urlsplit(self.dashboard_url)
        return f"{parts.scheme}://{parts.netloc}"

    def page_environment(self) -> dict[str, str]:
        """DashboardPageFunction's environment for the Cognito endpoints, which are this server here (the
        deployed ones name the hosted sign-in domain and cognito-identity.<region>); the ids are the
        template's, resolved to this server's at deploy."""
        return {
            "DASHBOARD_SIGN_IN_URL": self.url,
            "DASHBOARD_IDENTITY_POOL_URL": self.url + "/",
        }

    def start(self) -> str:
        cognito = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self) -> None:
                self._send(204, cognito.cors(self.headers.get("Origin")))

            def do_GET(self) -> None:
                status, headers, body = cognito.get(self.path)
                self._send(status, headers, body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = cognito.post(self.path, dict(self.headers), body)
                self._send(status, {**headers, **cognito.cors(self.headers.get("Origin"))}, payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="local-cognito", daemon=True).start()
        return self.url

    def provider(self) -> dict[str, Any]:
        """The provider's discovery document (read once, at the first sign-in: the provider starts after
        this server, whose callback URL it is given)."""
        if not self._provider:
            discovery = f"{self.issuer}/.well-known/openid-configuration"
            with urllib.request.urlopen(discovery, timeout=10) as answer:  # noqa: S310 - loopback provider
                self._provider = json.loads(answer.read())
        return self._provider

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def cors(self, origin: str | None) -> dict[str, str]:
        if origin != self.dashboard_origin:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "content-type, x-amz-target, x-amz-user-agent",
            "Vary": "Origin",
        }

    # ------------------------------------------------------------------ the hosted UI
    def get(self, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        try:
            if parts.path == "/oauth2/authorize":
                return 302, {"Location": self._authorize(query)}, b""
            if parts.path == "/oauth2/idpresponse":
                return 302, {"Location": self._provider_response(query)}, b""
            if parts.path == "/.well-known/jwks.json":
                return 200, {"Content-Type": "application/json"}, json.dumps(self._jwks()).encode()
        except SignInRefused as refused:
            return refused.status, {"Content-Type": "text/plain"}, refused.message.encode()
        return 404, {}, b""

    def _authorize(self, query: dict[str, str]) -> str:
        if query.get("client_id") != self.client_id or query.get("redirect_uri") != self.dashboard_url:
            raise SignInRefused(400, "invalid_request", "unknown client or redirect_uri")
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise SignInRefused(400, "invalid_request", "the code flow with PKCE (S256) only")
        if not query.get("code_challenge") or query.get("identity_provider", "agency") != "agency":
            raise SignInRefused(400, "invalid_request", "code_challenge required; provider: agency")
        state, verifier, nonce = (
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
            secrets.token_urlsafe(16),
        )
        with self._lock:
            self._pending[state] = {"page": query, "verifier": verifier, "nonce": nonce, "at": time.time()}
        return f"{self.provider()['authorization_endpoint']}?" + urllib.parse.urlencode(
            {
                "client_id": IDP_CLIENT_ID,
                "response_type": "code",
                "scope": "openid profile groups",
                "redirect_uri": self.url + "/oauth2/idpresponse",
                "state": state,
                "nonce": nonce,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )

    def _provider_response(self, query: dict[str, str]) -> str:
        with self._lock:
            pending = self._pending.pop(query.get("state", ""), None)
        if pending is None or time.time() - pending["at"] > 600 or "code" not in query:
            raise SignInRefused(400, "invalid_request", "unknown or expired sign-in")
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": self.url + "/oauth2/idpresponse",
                "client_id": IDP_CLIENT_ID,
                "client_secret": self.idp_client_secret,
                "code_verifier": pending["verifier"],
            }
        ).encode()
        request = urllib.request.Request(self.provider()["token_endpoint"], data=form, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback provider
            tokens = json.loads(answer.read())
        claims = self._verify_provider_token(str(tokens["id_token"]), pending["nonce"])
        attributes = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}#{claims['sub']}")),
            "custom:groups": json.dumps(claims.get("groups", [])),
            "custom:amr": json.dumps(claims.get("amr", [])),
            "identities": json.dumps(
                [{"providerName": "agency", "providerType": "OIDC", "userId": claims["sub"]}]
            ),
        }
        user_name = f"agency_{claims['sub']}"
        assert self.run_trigger is not None
        event = self.run_trigger(
            {
                "version": "1",
                "triggerSource": "TokenGeneration_HostedAuth",
                "region": self.region,
                "userPoolId": self.user_pool_id,
                "userName": user_name,
                "callerContext": {"awsSdkVersion": "local", "clientId": self.client_id},
                "request": {"userAttributes": attributes, "groupConfiguration": {}},
                "response": {"claimsOverrideDetails": None},
            }
        )
        details = (event.get("response") or {}).get("claimsOverrideDetails") or {}
        token_claims = {**attributes, "cognito:username": user_name}
        token_claims.update(details.get("claimsToAddOrOverride") or {})
        for suppressed in details.get("claimsToSuppress") or []:
            token_claims.pop(suppressed, None)
        page = pending["page"]
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = {
                "claims": token_claims,
                "challenge": page["code_challenge"],
                "at": time.time(),
            }
        return f"{self.dashboard_url}?" + urllib.parse.urlencode(
            {"code": code, **({"state": page["state"]} if "state" in page else {})}
        )

    def _verify_provider_token(self, token: str, nonce: str) -> dict[str, Any]:
        if self._provider_keys is None:
            with urllib.request.urlopen(self.provider()["jwks_uri"], timeout=10) as answer:  # noqa: S310
                self._provider_keys = KeySet.import_key_set(json.loads(answer.read()))
        decoded = jwt.decode(token, self._provider_keys, algorithms=["RS256"])
        claims = dict(decoded.claims)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": IDP_CLIENT_ID},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(claims)
        return claims

    def _jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    # ------------------------------------------------------------------ token endpoint, identity pool
    def post(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            if raw_path == "/oauth2/token":
                answer = self._token(dict(urllib.parse.parse_qsl(body.decode())))
                return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
            target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
            request = json.loads(body or b"{}")
            if raw_path == "/" and target == "AWSCognitoIdentityService.GetId":
                answer = {"IdentityId": self._identity(request)[0]}
            elif raw_path == "/" and target == "AWSCognitoIdentityService.GetCredentialsForIdentity":
                answer = self._credentials(request)
            else:
                raise SignInRefused(400, "UnknownOperationException", f"unknown operation {target}")
            return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(answer).encode()
        except SignInRefused as refused:
            key = "error" if raw_path == "/oauth2/token" else "__type"
            payload = {key: refused.code, "message": refused.message}
            return refused.status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            issued = self._codes.pop(form.get("code", ""), None)  # once
        if (
            issued is None
            or time.time() - issued["at"] > CODE_SECONDS
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != self.client_id
            or form.get("redirect_uri") != self.dashboard_url
            or not secrets.compare_digest(s256(form.get("code_verifier", "")), issued["challenge"])
        ):
            raise SignInRefused(400, "invalid_grant", "invalid code or code_verifier")
        now = int(time.time())
        claims = {
            **issued["claims"],
            "iss": self.url,  # https://cognito-idp.<region>.amazonaws.com/<pool id> on AWS
            "aud": self.client_id,
            "token_use": "id",
            "auth_time": now,
            "iat": now,
            "exp": now + SESSION_SECONDS,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": self._key.kid}, claims, self._key)
        return {"id_token": id_token, "token_type": "Bearer", "expires_in": SESSION_SECONDS}

    def _identity(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if request.get("IdentityPoolId", self.identity_pool_id) != self.identity_pool_id:
            raise SignInRefused(400, "ResourceNotFoundException", "IdentityPool not found")
        token = (request.get("Logins") or {}).get(self.provider_name)
        if not token:
            raise SignInRefused(400, "NotAuthorizedException", "Unauthenticated access is not supported")
        try:
            claims = dict(jwt.decode(token, self._key, algorithms=["RS256"]).claims)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.url},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
            ).validate(claims)
        except Exception as error:
            raise SignInRefused(400, "NotAuthorizedException", "Invalid login token.") from error
        identity = f"{self.region}:{uuid.uuid5(uuid.NAMESPACE_URL, self.identity_pool_id + claims['sub'])}"
        if request.get("IdentityId", identity) != identity:
            raise SignInRefused(400, "NotAuthorizedException", "Logins don't match the identity")
        return identity, claims

    def _credentials(self, request: dict[str, Any]) -> dict[str, Any]:
        identity, claims = self._identity(request)
        role_arn = matching_role(self.rules, claims)
        if role_arn is None:  # AmbiguousRoleResolution: Deny
            raise SignInRefused(
                400, "InvalidIdentityPoolConfigurationException", "No role matched the token's claims"
            )
        assert self.role_trust is not None
        assert self.mint_session is not None
        if not trusts_identity_pool(self.role_trust(role_arn), self.identity_pool_id):
            raise SignInRefused(
                400,
                "InvalidIdentityPoolConfigurationException",
                "Invalid identity pool configuration. Check assigned IAM roles for this pool.",
            )
        credentials = self.mint_session(role_arn, "CognitoIdentityCredentials")
        return {
            "IdentityId": identity,
            "Credentials": {
                "AccessKeyId": credentials["access_key_id"],
                "SecretKey": credentials["secret_access_key"],
                "SessionToken": credentials["session_token"],
                "Expiration": int(time.time()) + SESSION_SECONDS,
            },
        }
