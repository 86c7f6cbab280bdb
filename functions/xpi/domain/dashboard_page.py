"""The dashboard page as the API serves it before anyone signs in (GET /dashboard, GET /dashboard/{file},
no authorization): which files there are, and the headers every answer carries. Static files only: no
data, nothing of a caller; the page's data comes from the IAM-authorised /v1/... routes, signed in the
browser with the identity pool's credentials (docs/dashboard.md)."""

from urllib.parse import urlsplit

# The page's files (in the package, xpi/dashboard/) and what each is; anything else is 404.
PAGE_FILES: dict[str, str] = {
    "index.html": "text/html",
    "compliance.html": "text/html",
    "usage.html": "text/html",
    "experiments.html": "text/html",
    "compare.html": "text/html",
    "dashboard.css": "text/css",
    "sign-in.js": "text/javascript",
    "charts.js": "text/javascript",
    "export.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "compliance.js": "text/javascript",
    "usage.js": "text/javascript",
    "experiments.js": "text/javascript",
    "compare.js": "text/javascript",
}
# The sign-in configuration the page reads beside its files (made from the function's environment).
SIGN_IN_CONFIG = "sign-in.json"
ENTRY = "index.html"


def origin(url: str) -> str:
    """scheme://host[:port] of a URL; "" when it is not an http(s) URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in {"https", "http"} and parts.netloc else ""


def content_security_policy(connect_to: list[str]) -> str:
    """Scripts, styles and images from the page's own origin only (no inline script, no framework, no
    CDN); calls to its own origin (the API) and the sign-in's endpoints only; never framed."""
    others = sorted({o for o in (origin(url) for url in connect_to) if o})
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src " + " ".join(["'self'", *others]),
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_headers(content_type: str, csp: str, *, cache: bool) -> dict[str, str]:
    """Every answer's headers: its type, the CSP, no sniffing, no framing, no referrer; the static files
    revalidated at each load (a deployment changes them), the sign-in configuration never stored."""
    return {
        "Content-Type": f"{content_type}; charset=utf-8",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "Cache-Control": "no-cache" if cache else "no-store",
    }
