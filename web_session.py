"""The browser's session: the auth-token cookie and the Origin check that guards it.

A browser sends the cookie with every request to this host, even one another
site makes it send, so a request that leans on the cookie alone must show it
comes from a page of ours.
"""

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

TOKEN_COOKIE = "auth-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_allowed(conn: HTTPConnection, allowed_origins: tuple[str, ...]) -> bool:
    """True when Origin names the host this request was sent to, or one the
    operator allows for CORS."""
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    # The host alone is compared, not the scheme: behind a proxy that ends TLS
    # the browser says https while this process may see http.
    return urlsplit(origin).netloc == conn.url.netloc or origin in allowed_origins


def needs_origin_check(conn: HTTPConnection) -> bool:
    """True for what can change state: a WebSocket, or a method other than GET."""
    return conn.scope["type"] == "websocket" or conn.scope["method"] not in SAFE_METHODS


def set_session_cookie(
    response: Response, conn: HTTPConnection, token: str, max_age: int
) -> None:
    """Keep the token in an HttpOnly cookie that page scripts cannot read."""
    # TODO: behind a proxy that ends TLS, the cookie is marked Secure only when
    # uvicorn trusts the proxy's X-Forwarded-Proto (FORWARDED_ALLOW_IPS).
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=conn.url.scheme == "https",
    )


def clear_session_cookie(response: Response, conn: HTTPConnection) -> None:
    """Tell the browser to forget the session."""
    response.delete_cookie(
        TOKEN_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=conn.url.scheme == "https",
    )
