"""A local API Gateway (REST) in front of the API's functions (each method's aws_proxy integration names
its function: the API function, or the admin function for /v1/admin/*), because moto's API Gateway does
not invoke Lambda integrations.

It serves exactly the routes api/openapi.yaml declares, under /<stage>/ as execute-api does. Each
method's authorization is the one API Gateway creates when it imports the document
(`method_authorization`): AWS_IAM when the operation's own `security` names a SigV4 scheme, otherwise
NONE. For an AWS_IAM method it does what API Gateway does, for real:
  - verifies the SigV4 signature (service execute-api) against the IAM access keys held by moto (read
    from moto's IAM backend in this process), or against the MFA session credentials minted here;
  - evaluates the caller's IAM policies (attached managed and inline user policies, through moto's IAM
    API) together with the API's resource policy (the RestApi's `Policy` as deployed, see
    `deployed_resource_policy`) for execute-api:Invoke on the method ARN: an explicit Deny in either
    wins, else an Allow in either (the caller is in the API's account), else an implicit deny;
  - builds the REST proxy event (requestContext.identity.userArn / caller / accessKey / accountId, path
    parameters, stage, request id), invokes the function through the Lambda API (so it runs in the
    local runtime pool) and returns its proxy response; 502 on a function error, 504 after 29 s.
A NONE method is open, as on AWS: no signature is read, the event carries no IAM identity, and only a
resource policy (which must then Allow the anonymous caller) can refuse it.
The IAM conditions understood are listed at `_CONDITION_OPERATORS` and `_condition_keys`; a condition
not understood keeps an Allow from applying and lets a Deny apply (fails closed both ways).
Unsigned, unknown-route, badly signed and denied requests get API Gateway's own 403 bodies.
"""

import base64
import contextlib
import fnmatch
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MISSING_TOKEN = "Missing Authentication Token"  # noqa: S105 - API Gateway's message, not a secret
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."
INTEGRATION_TIMEOUT_S = 29
MAX_CLOCK_SKEW_S = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class Principal:
    user_name: str
    user_id: str
    arn: str
    access_key_id: str
    secret_access_key: str
    mfa: bool = False
    mfa_authenticated_at: float | None = None  # epoch seconds of the MFA sign-in (aws:MultiFactorAuthAge)
    role_name: str | None = None  # a role session (AssumeRole in the local STS): the role's policies apply


Authorization = Literal["AWS_IAM", "NONE"]
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # "/v1/requests/{id}"
    pattern: re.Pattern[str]
    parameters: tuple[str, ...]
    authorization: Authorization = "AWS_IAM"


def _is_sigv4_scheme(scheme: Any) -> bool:
    if not isinstance(scheme, dict):
        return False
    auth = scheme.get("x-amazon-apigateway-auth")
    return str(scheme.get("x-amazon-apigateway-authtype", "")).lower() == "awssigv4" or (
        isinstance(auth, dict) and str(auth.get("type", "")).upper() == "AWS_IAM"
    )


def method_authorization(document: dict[str, Any], path: str, method: str) -> Authorization:
    """The authorization API Gateway gives this method when it imports the document: AWS_IAM only when
    the operation's own `security` names a SigV4 scheme (`x-amazon-apigateway-authtype: awsSigv4`, or
    `x-amazon-apigateway-auth` of type AWS_IAM); the document-level `security` is not applied on import,
    so a method without its own requirement is NONE (open)."""
    operation = document["paths"][path][method.lower()]
    schemes = {
        **document.get("securityDefinitions", {}),  # Swagger 2.0
        **document.get("components", {}).get("securitySchemes", {}),  # OpenAPI 3
    }
    for requirement in operation.get("security") or []:
        if any(_is_sigv4_scheme(schemes.get(name)) for name in requirement or {}):
            return "AWS_IAM"
    return "NONE"


def routes_of(document: dict[str, Any]) -> list[Route]:
    routes = []
    for path, operations in document.get("paths", {}).items():
        parameters = tuple(re.findall(r"{([^}/]+)}", path))
        regex = "^" + re.sub(r"\\{[^}/]+\\}", "([^/]+)", re.escape(path)) + "$"
        for method in operations:
            if method.upper() in HTTP_METHODS:
                routes.append(
                    Route(
                        method.upper(),
                        path,
                        re.compile(regex),
                        parameters,
                        method_authorization(document, path, method),
                    )
                )
    return routes


class IamDirectory:
    """Who holds an access key, and what IAM lets them invoke: moto's IAM, read in this process."""

    def __init__(self, iam: Any, account_id: str, partition: str) -> None:
        self._iam, self._account, self._partition = iam, account_id, partition
        self._sessions: dict[str, tuple[Principal, str]] = {}  # access key -> (principal, token)
        self._policy_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._tags_cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def user_arn(self, user_name: str, path: str = "/") -> str:
        # Built with the region's partition (the same form moto gives its users).
        return f"arn:{self._partition}:iam::{self._account}:user{path}{user_name}"

    def find(self, access_key_id: str, session_token: str | None) -> Principal | None:
        with self._lock:
            session = self._sessions.get(access_key_id)
        if session is not None:
            principal, token = session
            return principal if session_token and hmac.compare_digest(session_token, token) else None
        from moto.iam.models import iam_backends

        backend = iam_backends[self._account][self._partition]  # keyed by partition in moto 5
        for user in list(backend.users.values()):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status == "Active":
                    return Principal(
                        user.name, user.id, self.user_arn(user.name, user.path), key.access_key_id,
                        key.secret_access_key,
                    )  # fmt: skip
        return self._role_session(access_key_id, session_token)

    def _role_session(self, access_key_id: str, session_token: str | None) -> Principal | None:
        """A session of a role assumed through the local STS (stock boto3 AssumeRole): API Gateway sees
        its assumed-role ARN as userArn and `<role id>:<session name>` as caller, as on AWS."""
        from moto.sts.models import sts_backends

        assumed = sts_backends[self._account][self._partition].get_assumed_role_from_access_key(access_key_id)
        if (
            assumed is None
            or not session_token
            or not hmac.compare_digest(session_token, assumed.session_token)
        ):
            return None
        role_name = assumed.role_arn.rsplit("/", 1)[-1]
        return Principal(
            "", assumed.user_id, assumed.arn, assumed.access_key_id, assumed.secret_access_key,
            role_name=role_name,
        )  # fmt: skip

    def principal_tags(self, principal: Principal) -> dict[str, str]:
        """The IAM tags of a user, or of the role of a role session (aws:PrincipalTag), cached 5 s."""
        name = principal.role_name or principal.user_name
        cache_key = f"tags:{'role' if principal.role_name else 'user'}:{name}"
        with self._lock:
            cached = self._tags_cache.get(cache_key)
        if cached and time.monotonic() - cached[0] < 5:
            return cached[1]
        if principal.role_name:
            listed = self._iam.list_role_tags(RoleName=name)["Tags"]
        else:
            listed = self._iam.list_user_tags(UserName=name)["Tags"]
        tags = {str(t["Key"]): str(t["Value"]) for t in listed}
        with self._lock:
            self._tags_cache[cache_key] = (time.monotonic(), tags)
        return tags

    def principal_statements(self, principal: Principal) -> list[dict[str, Any]]:
        """The identity policy statements of a user, or of the role of a role session."""
        if principal.role_name is None:
            return self.statements(principal.user_name)
        role = self._iam.get_role(RoleName=principal.role_name)["Role"]["RoleName"]
        documents: list[Any] = []
        for attached in self._iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            version = self._iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            documents.append(
                self._iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)[
                    "PolicyVersion"
                ]["Document"]
            )
        for name in self._iam.list_role_policies(RoleName=role)["PolicyNames"]:
            documents.append(self._iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        statements: list[dict[str, Any]] = []
        for document in documents:
            parsed = json.loads(unquote(document)) if isinstance(document, str) else document
            found = parsed.get("Statement", [])
            statements.extend(found if isinstance(found, list) else [found])
        return statements

    def mint_mfa_session(
        self, user_name: str, access_key_id: str, *, authenticated_at: float | None = None
    ) -> dict[str, str]:
        """Temporary credentials of the user marked MFA-authenticated, as GetSessionToken with
        SerialNumber/TokenCode returns them on AWS (aws:MultiFactorAuthPresent = true)."""
        base = self.find(access_key_id, None)
        if base is None or base.user_name != user_name:
            raise ValueError(f"no active key {access_key_id} for {user_name}")
        session_key = "ASIA" + secrets.token_hex(8).upper()
        secret, token = secrets.token_urlsafe(30), "mfa-" + secrets.token_urlsafe(48)
        principal = Principal(
            base.user_name, base.user_id, base.arn, session_key, secret, mfa=True,
            mfa_authenticated_at=time.time() if authenticated_at is None else authenticated_at,
        )  # fmt: skip
        with self._lock:
            self._sessions[session_key] = (principal, token)
        return {"aws_access_key_id": session_key, "aws_secret_access_key": secret, "aws_session_token": token}

    def statements(self, user_name: str) -> list[dict[str, Any]]:
        with self._lock:
            cached = self._policy_cache.get(user_name)
        if cached and time.monotonic() - cached[0] < 5:
            return cached[1]
        documents: list[Any] = []
        for attached in self._iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]:
            version = self._iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            documents.append(
                self._iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)[
                    "PolicyVersion"
                ]["Document"]
            )
        for name in self._iam.list_user_policies(UserName=user_name)["PolicyNames"]:
            documents.append(self._iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"])
        statements: list[dict[str, Any]] = []
        for document in documents:
            parsed = json.loads(unquote(document)) if isinstance(document, str) else document
            found = parsed.get("Statement", [])
            statements.extend(found if isinstance(found, list) else [found])
        with self._lock:
            self._policy_cache[user_name] = (time.monotonic(), statements)
        return statements


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


Decision = Literal["ALLOW", "EXPLICIT_DENY", "IMPLICIT_DENY"]
_ACCOUNT = re.compile(r"^(?:arn:[^:]+:iam::)?(?P<account>\d{12})(?::root)?$")
# Operators understood, each also as ...IfExists; a negated operator holds when its key is absent.
_CONDITION_OPERATORS = {
    "Bool": lambda actual, expected: actual.lower() in [e.lower() for e in expected],
    "StringEquals": lambda actual, expected: actual in expected,
    "StringNotEquals": lambda actual, expected: actual not in expected,
    "NumericGreaterThan": lambda actual, expected: any(float(actual) > float(e) for e in expected),
    "NumericLessThanEquals": lambda actual, expected: any(float(actual) <= float(e) for e in expected),
    "ArnEquals": lambda actual, expected: any(fnmatch.fnmatchcase(actual, e) for e in expected),
    "ArnNotEquals": lambda actual, expected: not any(fnmatch.fnmatchcase(actual, e) for e in expected),
}
_NEGATED_OPERATORS = {"StringNotEquals", "ArnNotEquals"}


# aws:PrincipalTag/<key>: every such key is understood (absent when the principal has no such tag).
_PRINCIPAL_TAG = "aws:principaltag/"


def _condition_keys(principal: Principal | None, tags: dict[str, str] | None = None) -> dict[str, str | None]:
    """The request's values of the condition keys understood here (lower-cased names; None: absent).
    aws:MultiFactorAuthPresent is present (true) only for MFA sessions, absent for long-term keys, as
    on AWS, and aws:MultiFactorAuthAge (seconds since the MFA sign-in) only with it; no request arrives
    through a VPC endpoint locally, so aws:SourceVpce/aws:SourceVpc are absent. aws:PrincipalTag/<key>:
    the tags of the IAM user, or of the role of a role session (`tags`). aws:PrincipalArn: the user's ARN,
    or the role's (not the session's) for a role session, as on AWS."""
    mfa_at = principal.mfa_authenticated_at if principal is not None and principal.mfa else None
    return {
        "aws:principalarn": _principal_arn(principal) if principal is not None else None,
        "aws:multifactorauthpresent": "true" if principal is not None and principal.mfa else None,
        "aws:multifactorauthage": str(int(time.time() - mfa_at)) if mfa_at is not None else None,
        "aws:sourcevpce": None,
        "aws:sourcevpc": None,
        **{_PRINCIPAL_TAG + key.lower(): value for key, value in (tags or {}).items()},
    }


def _principal_arn(principal: Principal) -> str:
    session = re.fullmatch(
        r"arn:(?P<p>[^:]+):sts::(?P<a>\d{12}):assumed-role/(?P<role>[^/]+)/.*", principal.arn
    )
    return f"arn:{session['p']}:iam::{session['a']}:role/{session['role']}" if session else principal.arn


def _condition_holds(condition: Any, keys: dict[str, str | None], *, unknown_holds: bool) -> bool:
    """IAM's AND of every operator and key; one not understood here holds as `unknown_holds` says."""
    verdict = True
    for operator, tests in (condition or {}).items():
        base = operator.removesuffix("IfExists")
        for key, expected in (tests or {}).items():
            understood = key.lower() in keys or key.lower().startswith(_PRINCIPAL_TAG)
            if base not in _CONDITION_OPERATORS or not understood:
                verdict = verdict and unknown_holds
                continue
            actual = keys.get(key.lower())
            if actual is None:
                verdict = verdict and (operator.endswith("IfExists") or base in _NEGATED_OPERATORS)
            else:
                verdict = verdict and _CONDITION_OPERATORS[base](actual, _listed(expected))
    return verdict


def _principal_named(statement: dict[str, Any], principal: Principal | None) -> bool:
    """Whether a resource-policy statement names this caller (None: anonymous). An account principal
    (`arn:...:iam::<account>:root`) covers every principal of that account in a Deny; in an Allow it
    delegates to the account's identity policies and grants nothing by itself, as on AWS."""
    if "NotPrincipal" in statement:
        return statement.get("Effect") == "Deny"  # not modelled here: fail closed
    named = statement.get("Principal")
    values = _listed(named.get("AWS", [])) if isinstance(named, dict) else _listed(named)
    for value in values:
        if value == "*":
            return True
        if principal is None:
            continue
        account = _ACCOUNT.match(value)
        if value == principal.arn or (
            account is not None
            and statement.get("Effect") == "Deny"
            and principal.arn.split(":")[4] == account["account"]
        ):
            return True
    return False


def _matching_effects(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    principal: Principal | None,
    *,
    resource_policy: bool,
    tags: dict[str, str] | None = None,
) -> set[str]:
    keys = _condition_keys(principal, tags)
    effects = set()
    for statement in statements:
        effect = statement.get("Effect")
        if not any(fnmatch.fnmatchcase(action, a) for a in _listed(statement.get("Action", []))):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement.get("Resource", []))):
            continue
        if resource_policy and not _principal_named(statement, principal):
            continue
        if _condition_holds(statement.get("Condition"), keys, unknown_holds=effect == "Deny"):
            effects.add(str(effect))
    return effects


def decide(
    identity_statements: list[dict[str, Any]],
    resource_statements: list[dict[str, Any]] | None,
    action: str,
    resource: str,
    principal: Principal | None,
    *,
    tags: dict[str, str] | None = None,
) -> Decision:
    """API Gateway's decision for a caller in the API's own account (None: anonymous, a NONE method):
    an explicit Deny in the identity or the resource policy wins; else an Allow in either suffices; else
    an implicit deny. Without a resource policy an anonymous caller of a NONE method is let through."""
    effects = _matching_effects(
        identity_statements, action, resource, principal, resource_policy=False, tags=tags
    )
    if resource_statements is not None:
        effects |= _matching_effects(
            resource_statements, action, resource, principal, resource_policy=True, tags=tags
        )
    elif principal is None:
        effects.add("Allow")
    if "Deny" in effects:
        return "EXPLICIT_DENY"
    return "ALLOW" if "Allow" in effects else "IMPLICIT_DENY"


def resource_policy_statements(policy: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if policy is None:
        return None
    found = policy.get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


@dataclass
class LocalApiGateway:
    document: dict[str, Any]
    api_id: str
    stage: str
    region: str
    account_id: str
    partition: str
    directory: IamDirectory
    invoke: Callable[[bytes], tuple[bytes, str | None]]  # payload -> (response payload, function error)
    resource_policy: dict[str, Any] | None = None  # the RestApi's Policy, intrinsics resolved
    # Each request's access-log line (the stage's AccessLogSetting fields), as API Gateway writes them
    access_log: Callable[[dict[str, str]], None] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}/{self.stage}"

    def start(self) -> str:
        gateway, routes = self, routes_of(self.document)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer's head and body go out in two writes; with Nagle's algorithm on, the body waits for
            # the client's delayed ACK of the head (40 ms on Linux) on a kept-alive connection.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.handle(
                    self.command, self.path, dict(self.headers), body, routes
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def __getattr__(self, name: str) -> Any:
                # Every method (do_GET, do_TRACE, do_QUERY, ...) reaches the gateway, as on AWS: one
                # the document does not declare for a path gets API Gateway's 403, not the HTTP
                # server's 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-apigateway", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ one request
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes, routes: list[Route]
    ) -> tuple[int, dict[str, str], bytes]:
        started, access = time.monotonic(), {"requestId": str(uuid.uuid4()), "method": method}
        status, answer_headers, payload = self._answer(method, raw_path, headers, body, routes, access)
        if self.access_log is not None:
            error = ""
            if (status >= 400 and "x-amzn-ErrorType" in answer_headers) or status in (502, 504):
                try:
                    answer = json.loads(payload)
                    error = str(answer.get("message") or answer.get("Message") or "")
                except (ValueError, AttributeError):
                    error = ""
            self.access_log(
                {
                    "requestId": access["requestId"],
                    "caller": access.get("caller", "-"),
                    "method": method,
                    "path": access.get("path", "-"),
                    "status": str(status),
                    "latencyMs": str(round((time.monotonic() - started) * 1000)),
                    "error": error or "-",
                }
            )
        return status, answer_headers, payload

    def _answer(  # noqa: PLR0917 - one request's parts, and what the access log learns of it
        self,
        method: str,
        raw_path: str,
        headers: dict[str, str],
        body: bytes,
        routes: list[Route],
        access: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        request_id = access["requestId"]
        parts = urlsplit(raw_path)
        prefix = f"/{self.stage}"
        path = parts.path[len(prefix) :] if parts.path.startswith(prefix + "/") else None
        route: Route | None = None
        values: tuple[str, ...] = ()
        for candidate in routes if path is not None else []:
            match = candidate.pattern.match(path or "")
            if match and candidate.method == method:
                route, values = candidate, match.groups()
                break
        lower = {k.lower(): v for k, v in headers.items()}
        if route is not None:
            access["path"] = route.resource
        if route is None or (route.authorization == "AWS_IAM" and "authorization" not in lower):
            # API Gateway answers an undeclared route exactly like an unsigned request.
            return self._error(403, "MissingAuthenticationTokenException", MISSING_TOKEN, request_id)
        principal: Principal | None = None  # a NONE method reads no signature: the caller is anonymous
        if route.authorization == "AWS_IAM":
            authenticated = self._authenticate(method, raw_path, lower, body)
            if isinstance(authenticated, tuple):
                return self._error(403, authenticated[0], authenticated[1], request_id)
            principal = authenticated
            access["caller"] = principal.arn
        method_arn = (
            f"arn:{self.partition}:execute-api:{self.region}:{self.account_id}:{self.api_id}/"
            f"{self.stage}/{method}{path}"
        )
        decision = decide(
            self.directory.principal_statements(principal) if principal else [],
            resource_policy_statements(self.resource_policy),
            "execute-api:Invoke",
            method_arn,
            principal,
            tags=self.directory.principal_tags(principal) if principal else {},
        )
        if decision != "ALLOW":
            message = (
                f"User: {principal.arn if principal else 'anonymous'} is not authorized to perform: "
                f"execute-api:Invoke on resource: {method_arn}"
                + (" with an explicit deny" if decision == "EXPLICIT_DENY" else "")
            )
            return self._error(403, "AccessDeniedException", message, request_id, key="Message")
        event = self._event(
            method, path or "", route, values, parts.query, headers, body, principal, request_id
        )
        return self._integrate(event, request_id)

    def _authenticate(  # noqa: PLR0911 - one return per API Gateway error
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> Principal | tuple[str, str]:
        match = _AUTHORIZATION.fullmatch(headers["authorization"].strip())
        if match is None or match["service"] != "execute-api" or match["region"] != self.region:
            return (
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.",
            )
        amz_date = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return (
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            )
        if abs((datetime.now(UTC) - signed_at).total_seconds()) > MAX_CLOCK_SKEW_S:
            return (
                "InvalidSignatureException",
                "Signature expired: " + amz_date + " is now earlier than allowed.",
            )
        principal = self.directory.find(match["key"], headers.get("x-amz-security-token"))
        if principal is None:
            return "UnrecognizedClientException", UNKNOWN_KEY
        signed = match["headers"].split(";")
        if "host" not in signed:
            return "IncompleteSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
        request = AWSRequest(
            method=method,
            url=f"http://{headers.get('host', '')}{raw_path}",
            headers={name: headers.get(name, "") for name in signed},
            data=body,
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            Credentials(principal.access_key_id, principal.secret_access_key), "execute-api", self.region
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return "InvalidSignatureException", BAD_SIGNATURE
        return principal

    def _event(  # noqa: PLR0917 - the parts of one request, built into one event
        self,
        method: str,
        path: str,
        route: Route,
        values: tuple[str, ...],
        query: str,
        headers: dict[str, str],
        body: bytes,
        principal: Principal | None,
        request_id: str,
    ) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for key, value in pairs:
            multi_query.setdefault(key, []).append(value)
        now = datetime.now(UTC)
        text: str | None
        try:
            text, encoded = (body.decode("utf-8") if body else None), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": {n: unquote(v) for n, v in zip(route.parameters, values, strict=True)} or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.resource,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.stage}{path}",
                "accountId": self.account_id,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": self.api_id,
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {  # an open (NONE) method's caller has no IAM identity
                    "cognitoIdentityPoolId": None,
                    "accountId": self.account_id if principal else None,
                    "cognitoIdentityId": None,
                    "caller": principal.user_id if principal else None,
                    "sourceIp": "127.0.0.1",
                    "principalOrgId": None,
                    "accessKey": principal.access_key_id if principal else None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": principal.arn if principal else None,
                    "userAgent": headers.get("User-Agent") or headers.get("user-agent"),
                    "user": principal.user_id if principal else None,
                },
                "domainName": f"{self.api_id}.execute-api.{self.region}.amazonaws.com",
                "apiId": self.api_id,
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    def _integrate(self, event: dict[str, Any], request_id: str) -> tuple[int, dict[str, str], bytes]:
        answer: list[tuple[bytes, str | None]] = []
        worker = threading.Thread(
            target=lambda: answer.append(self.invoke(json.dumps(event).encode())), daemon=True
        )
        worker.start()
        worker.join(INTEGRATION_TIMEOUT_S)
        if not answer:
            return self._error(504, "", "Endpoint request timed out", request_id)
        payload, function_error = answer[0]
        try:
            response = json.loads(payload)
            status = int(response["statusCode"])
        except (ValueError, KeyError, TypeError):
            response, status = None, 0
        if function_error or response is None or not 100 <= status <= 599:
            return self._error(502, "", "Internal server error", request_id)
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(str(name), ",".join(str(v) for v in values))
        headers["x-amzn-RequestId"] = request_id
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        return status, headers, data

    @staticmethod
    def _error(
        status: int, error_type: str, message: str, request_id: str, key: str = "message"
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        return status, headers, json.dumps({key: message}).encode()


# ---------------------------------------------------------------------- the stage's access log
class AccessLogWriter:
    """The stage's access log: one JSON line per request in the log group the stage's
    AccessLogSetting names, delivered in the background a moment later (API Gateway's delivery is
    asynchronous too), so the request never waits for it."""

    FLUSH_EVERY_S = 0.5
    STREAM = "local-apigateway"

    def __init__(self, logs: Any, log_group: str) -> None:
        self._logs, self._group = logs, log_group
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = False
        threading.Thread(target=self._deliver, name="local-apigateway-access-log", daemon=True).start()

    def write(self, line: dict[str, str]) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": json.dumps(line, separators=(",", ":"))}
        with self._lock:
            self._pending.append(event)

    def _deliver(self) -> None:
        while True:
            time.sleep(self.FLUSH_EVERY_S)
            with self._lock:
                events, self._pending = self._pending, []
            if events:
                try:
                    self._put(events)
                except Exception:  # a lost access-log batch must not stop the API
                    logging.getLogger(__name__).warning("access log: %d lines not delivered", len(events))

    def _put(self, events: list[dict[str, Any]]) -> None:
        if not self._ready:
            with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
                self._logs.create_log_stream(logGroupName=self._group, logStreamName=self.STREAM)
            self._ready = True
        self._logs.put_log_events(logGroupName=self._group, logStreamName=self.STREAM, logEvents=events)


def deployed_access_log_group(template: dict[str, Any], logs: Any) -> str | None:
    """The log group the API's stage writes its access log to: the template's AccessLogSetting
    destination (a log group of the same template, by GetAtt), found among the deployed log groups by
    the name its template gives it (its `/xpi/<stack>/...` name, the stack name resolved by matching)."""
    setting = template["Resources"]["XpiApi"]["Properties"].get("AccessLogSetting") or {}
    destination = setting.get("DestinationArn") or {}
    target = (destination.get("Fn::GetAtt") or [None])[0] if isinstance(destination, dict) else None
    if not target:
        return None
    name = template["Resources"][target]["Properties"].get("LogGroupName")
    pattern = name.get("Fn::Sub") if isinstance(name, dict) else name
    if not isinstance(pattern, str):
        return None
    wanted = re.compile(re.escape(pattern).replace(re.escape("${AWS::StackName}"), "[^/]+") + "$")
    for page in logs.get_paginator("describe_log_groups").paginate():
        for group in page.get("logGroups", []):
            if wanted.match(group["logGroupName"]):
                return str(group["logGroupName"])
    return None


# ---------------------------------------------------------------------- the API's resource policy
_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve_template_policy(
    template: dict[str, Any],
    logical_id: str,
    parameter_values: dict[str, str],
    *,
    account_id: str,
    region: str,
    partition: str,
) -> dict[str, Any] | None:
    """The `Policy` of the RestApi `logical_id` in a translated template, with the intrinsics a
    resource policy can hold resolved (Ref of parameters and pseudo parameters, AWS::NoValue, Fn::Sub,
    Fn::If and the condition functions) for these parameter values (the template's defaults otherwise).
    Anything else raises ValueError: a policy the gateway cannot read must not be served half-read."""
    policy = template["Resources"][logical_id].get("Properties", {}).get("Policy")
    if policy is None:
        return None
    names: dict[str, str] = {
        **{name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()},
        **parameter_values,
        "AWS::AccountId": account_id,
        "AWS::Region": region,
        "AWS::Partition": partition,
        "AWS::URLSuffix": "amazonaws.com",
    }
    conditions = template.get("Conditions", {})

    def named(name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if name not in names:
            raise ValueError(f"{logical_id} Policy: {name} cannot be resolved locally")
        return names[name]

    def resolve(value: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic function
        if isinstance(value, list):
            return [item for item in map(resolve, value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else named(argument, {})
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                variables = {k: resolve(v) for k, v in variables.items()}
                substituted = _SUB_VARIABLE.sub(lambda match: named(match[1], variables), text)
                return substituted.replace("${!", "${")  # ${!Literal} stands for ${Literal}
            if function == "Fn::If":
                condition, when_true, when_false = argument
                return resolve(when_true if resolve(conditions[condition]) else when_false)
            if function == "Condition" and isinstance(argument, str):
                return bool(resolve(conditions[argument]))
            if function == "Fn::Equals":
                left, right = resolve(argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not resolve(argument)[0]
            if function in ("Fn::And", "Fn::Or"):
                return (all if function == "Fn::And" else any)(resolve(argument))
            if function.startswith("Fn::"):
                raise ValueError(f"{logical_id} Policy: {function} is not resolved locally")
        return {
            key: item for key, item in ((k, resolve(v)) for k, v in value.items()) if item is not _NO_VALUE
        }

    resolved: dict[str, Any] = resolve(policy)
    return resolved


def deployed_resource_policy(
    cloudformation: Any, api_id: str, *, account_id: str, region: str, partition: str
) -> dict[str, Any] | None:
    """The resource policy of the RestApi `api_id` as deployed: its `Policy` in the translated template
    its stack was created from (samtranslator passes a Serverless::Api's `Policy` through), resolved
    with the stack's parameter values. None when the API has no resource policy."""
    for stack in cloudformation.describe_stacks()["Stacks"]:
        name = stack["StackName"]
        summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        for summary in summaries:
            if (
                summary["ResourceType"] == "AWS::ApiGateway::RestApi"
                and summary["PhysicalResourceId"] == api_id
            ):
                body = cloudformation.get_template(StackName=name)["TemplateBody"]
                template = json.loads(body) if isinstance(body, str) else dict(body)
                parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
                parameters["AWS::StackName"] = name
                return resolve_template_policy(
                    template,
                    summary["LogicalResourceId"],
                    parameters,
                    account_id=account_id,
                    region=region,
                    partition=partition,
                )
    return None


# ---------------------------------------------------------------------- the local stack's principals
@dataclass(frozen=True)
class LocalPrincipal:
    path: str  # IAM path
    managed_policies: tuple[str, ...] = ()  # output names of the template's managed policies attached
    inline_statements: tuple[dict[str, Any], ...] = ()
    mfa_session: bool = False  # also an MFA session, as "<name>_mfa"


LOCAL_PRINCIPALS = {
    "operator": LocalPrincipal(
        "/", ("ApiCallerPolicyArn", "ApiOperatorPolicyArn", "ApiAdminPolicyArn"), mfa_session=True
    ),
    "caller2": LocalPrincipal("/", ("ApiCallerPolicyArn",)),
    "auditor": LocalPrincipal("/xpi-auditors/", ("ApiCallerPolicyArn",)),
    "nobody": LocalPrincipal("/"),
    # execute-api:* on everything, no MFA condition: only the API's resource policy keeps its long-term
    # keys off the admin routes.
    "unrestricted": LocalPrincipal(
        "/",
        inline_statements=({"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"},),
        mfa_session=True,
    ),
}


def provision_principals(
    iam: Any, directory: IamDirectory, outputs: dict[str, str]
) -> dict[str, dict[str, str]]:
    """IAM users and access keys for the local API (`LOCAL_PRINCIPALS`): an operator (caller + operator
    + admin policies; admin routes need its MFA session), a second caller, an auditor, a principal with
    no policy and one allowed execute-api:* everywhere, plus the MFA sessions."""
    credentials: dict[str, dict[str, str]] = {}
    for name, spec in LOCAL_PRINCIPALS.items():
        user_name = f"xpi-{name}"
        iam.create_user(UserName=user_name, Path=spec.path)
        for output in spec.managed_policies:
            iam.attach_user_policy(UserName=user_name, PolicyArn=outputs[output])
        if spec.inline_statements:
            iam.put_user_policy(
                UserName=user_name,
                PolicyName="api-access",
                PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": list(spec.inline_statements)}
                ),
            )
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
        credentials[name] = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "arn": directory.user_arn(user_name, spec.path),
        }
        if spec.mfa_session:
            credentials[f"{name}_mfa"] = {
                **directory.mint_mfa_session(user_name, key["AccessKeyId"]),
                "arn": credentials[name]["arn"],
            }
    return credentials


# `${X.Arn}/invocations`, or `${X.Arn}${Qualifier}/invocations` (an alias the template may choose)
_INTEGRATION_FUNCTION = re.compile(r"\$\{(?P<logical_id>[A-Za-z0-9]+)\.Arn\}(\$\{Qualifier\})?/invocations")
# A function the template names `${AWS::StackName}-<suffix>` (when a reference would make a cycle)
_NAMED_FUNCTION = re.compile(r":function:\$\{AWS::StackName\}(?P<suffix>-[A-Za-z0-9-]+)/invocations")


def integration_functions(
    document: dict[str, Any], outputs: dict[str, str], stack_name: str = ""
) -> dict[tuple[str, str], str]:
    """(METHOD, resource) -> the name of the function its aws_proxy integration invokes: the function
    named in the integration's URI (`${<LogicalId>.Arn}`), found through the stack output
    `<LogicalId>Name`, or named by the stack's name (`function:${AWS::StackName}-<suffix>`), as API
    Gateway invokes each method's own integration."""
    functions: dict[tuple[str, str], str] = {}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method.upper() not in HTTP_METHODS:
                continue
            uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", "")
            text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
            if isinstance(text, list):  # Fn::Sub [string, variables]
                text = text[0]
            match = _INTEGRATION_FUNCTION.search(str(text))
            named = _NAMED_FUNCTION.search(str(text))
            if match is not None:
                functions[(method.upper(), path)] = outputs[f"{match['logical_id']}Name"]
            elif named is not None and stack_name:
                functions[(method.upper(), path)] = stack_name + named["suffix"]
            else:
                raise ValueError(f"{method.upper()} {path}: no Lambda integration the local API can invoke")
    return functions


def start_local_api(
    session: Any,
    *,
    aws_url: str,
    outputs: dict[str, str],
    build_dir: Any,
    region: str,
    account_id: str,
    invoke: Callable[[str, bytes], tuple[bytes, str | None]],
    stack_name: str = "",
) -> tuple[LocalApiGateway, dict[str, dict[str, str]]]:
    """The local API Gateway for the deployed API (document from the build, resource policy from the
    stack, both as deployed) and the local principals' credentials."""
    from moto.utilities.utils import get_partition

    from xpi_tools.local.deploy import load_template

    template = load_template(build_dir / "template.yaml")
    location = template["Resources"]["XpiApi"]["Properties"]["DefinitionBody"]["Fn::Transform"]["Parameters"]
    document = load_template(build_dir / str(location["Location"]))
    partition = get_partition(region)
    iam = session.client("iam", endpoint_url=aws_url)
    directory = IamDirectory(iam, account_id, partition)
    resource_policy = deployed_resource_policy(
        session.client("cloudformation", endpoint_url=aws_url),
        outputs["ApiId"],
        account_id=account_id,
        region=region,
        partition=partition,
    )
    functions = integration_functions(document, outputs, stack_name)

    def invoke_route(payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        return invoke(functions[(event["httpMethod"], event["resource"])], payload)

    log_group = deployed_access_log_group(template, session.client("logs", endpoint_url=aws_url))
    access_log = (
        AccessLogWriter(session.client("logs", endpoint_url=aws_url), log_group) if log_group else None
    )
    gateway = LocalApiGateway(
        document=document,
        api_id=outputs["ApiId"],
        stage=str(template["Resources"]["XpiApi"]["Properties"].get("StageName", "api")),
        region=region,
        account_id=account_id,
        partition=partition,
        directory=directory,
        invoke=invoke_route,
        resource_policy=resource_policy,
        access_log=access_log.write if access_log else None,
    )
    gateway.start()
    return gateway, provision_principals(iam, directory, outputs)
