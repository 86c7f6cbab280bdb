"""The dashboard page's files and its sign-in configuration, for its route (handlers/dashboard_page.py)."""

from dataclasses import dataclass
from functools import cache
from importlib import resources

from xpi.domain.dashboard_page import (
    ENTRY,
    PAGE_FILES,
    SIGN_IN_CONFIG,
    content_security_policy,
    page_headers,
)
from xpi.models.dashboard_page import SignInConfig
from xpi.settings import Settings


@dataclass(frozen=True)
class PageAnswer:
    status: int
    headers: dict[str, str]
    body: str


def sign_in_config(settings: Settings) -> SignInConfig:
    if settings.dashboard_sign_in != "oidc":
        return SignInConfig(signIn="none")
    return SignInConfig(
        signIn="oidc",
        region=settings.govcloud_region,
        signInUrl=settings.dashboard_sign_in_url,
        clientId=settings.dashboard_client_id,
        identityPoolUrl=settings.dashboard_identity_pool_url,
        identityPoolId=settings.dashboard_identity_pool_id,
        userPoolProvider=settings.dashboard_user_pool_provider,
        identityProvider=settings.dashboard_identity_provider,
    )


@cache
def _packaged(name: str) -> str:
    return resources.files("xpi").joinpath("dashboard", name).read_text(encoding="utf-8")


def page_file(name: str, settings: Settings) -> PageAnswer:
    """A file of the page by its name (only the listed ones: no name reaches the file system
    otherwise), sign-in.json, or 404."""
    config = sign_in_config(settings)
    csp = content_security_policy([config.signInUrl, config.identityPoolUrl])
    if name == SIGN_IN_CONFIG:
        return PageAnswer(200, page_headers("application/json", csp, cache=False), config.model_dump_json())
    content_type = PAGE_FILES.get(name)
    if content_type is None:
        return PageAnswer(404, page_headers("text/plain", csp, cache=False), "not found")
    return PageAnswer(200, page_headers(content_type, csp, cache=True), _packaged(name))


def entry(settings: Settings, request_path: str) -> PageAnswer:
    """GET /dashboard (or /dashboard/): to the page itself, at the path the browser asked through (the
    stage, or a custom domain's base path, before it); one leading slash, so never another host."""
    answer = page_file(ENTRY, settings)
    base = "/" + request_path.strip("/")
    location = f"{base}/{ENTRY}" if base.endswith("/dashboard") else f"dashboard/{ENTRY}"
    headers = {**answer.headers, "Location": location, "Content-Type": "text/plain; charset=utf-8"}
    return PageAnswer(302, headers, "")
