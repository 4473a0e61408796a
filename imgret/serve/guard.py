"""The token check and the security headers every response carries, as plain ASGI.

Written as an ASGI wrapper rather than Starlette's ``@app.middleware("http")`` because that
one runs every request through an extra task and a memory stream, which cost more than
serving a thumbnail already made (bench/RESULTS.md, 13:06).
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "imgret_token"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The OpenAPI page FastAPI renders starts Swagger UI from an inline script."""
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _token_cookie(token: str) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[TOKEN_COOKIE] = token
    cookie[TOKEN_COOKIE]["path"] = "/"
    cookie[TOKEN_COOKIE]["httponly"] = True
    cookie[TOKEN_COOKIE]["samesite"] = "strict"
    return cookie.output(header="").strip()


class Guard:
    """Refuse a request without ``token`` (when there is one) and add the headers.

    The token may come as ``Authorization: Bearer``, the ``X-Imgret-Token`` header, the
    cookie, or ``?token=`` (the address the server prints), which also sets the cookie so
    the page's own requests carry it.
    """

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path in ("/docs", "/redoc") or path.startswith("/static-")
        extra = {**HEADERS, "Content-Security-Policy": DOCS_CSP if docs else PAGE_CSP}
        if path.startswith("/api/"):
            extra["Cache-Control"] = "no-store"
        set_cookie = None
        if self.token is not None:
            request = Request(scope)
            given = (
                request.headers.get("x-imgret-token")
                or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                or request.cookies.get(TOKEN_COOKIE)
                or request.query_params.get("token")
                or ""
            )
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                refused = JSONResponse(
                    {"error": "this server needs its token: open the address it printed"},
                    status_code=401,
                    headers=extra,
                )
                await refused(scope, receive, send)
                return
            if request.query_params.get("token") is not None:
                set_cookie = _token_cookie(self.token)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
                if set_cookie is not None:
                    headers.append("set-cookie", set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_headers)
