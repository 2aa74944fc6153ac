"""Browser clients: CORS for the configured origins, and security headers on every response."""

import base64
import hashlib
import re

from flask import Flask, Response, request
from flask_cors import CORS

DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"

# Request headers a browser app may send, and response headers it may read.
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Idempotent-Replayed",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]
CORS_MAX_AGE_SECONDS = 600

# JSON needs nothing from a browser: no scripts, no framing, no forms.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI: its own scripts and styles, its inline start-up script (by hash, so no other
# inline script runs), data: icons from its CSS, and calls to this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def register_cors(app: Flask) -> None:
    """Allow cross-origin calls from CORS_ORIGINS only (none by default), preflight included.

    Bearer tokens, not cookies, authenticate: credentials mode stays off.
    """
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        origins=origins,
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=CORS_MAX_AGE_SECONDS,
        supports_credentials=False,
    )

    @app.after_request
    def vary_by_origin(response: Response) -> Response:
        # Every response depends on Origin (Access-Control-Allow-Origin echoes an allowed one,
        # even for "*"; none otherwise), so no cache may serve one origin's copy to another.
        # flask-cors says so only when several origins are configured.
        response.vary.add("Origin")
        return response


def _script_hashes(html: bytes) -> str:
    """CSP sources for the inline scripts of a page, by SHA-256."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )


def register_security_headers(app: Flask) -> None:
    """nosniff, a CSP, no framing, no referrer; no-store when the request carried credentials."""

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.endpoint == DOCS_ENDPOINT and response.status_code == 200:
            # Hashed from the page as rendered, so the CSP follows flask-smorest's template.
            csp = DOCS_CSP.format(hashes=_script_hashes(response.get_data()))
        else:
            csp = API_CSP
        headers.setdefault("Content-Security-Policy", csp)
        if "Authorization" in request.headers:
            # A per-user answer: no shared or browser cache may keep it.
            headers["Cache-Control"] = "no-store"
        return response
