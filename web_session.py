"""The browser's session: the auth-token cookie and the Origin check that guards it.

A browser sends the cookie with every request to this host, even one another
site makes it send, so a request that leans on the cookie alone must show it
comes from a page of ours.
"""

from starlette.requests import HTTPConnection
from starlette.responses import Response

TOKEN_COOKIE = "auth-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def own_origin(conn: HTTPConnection) -> str:
    """The origin this request was addressed to, as a browser would write it."""
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{conn.url.netloc}"


def origin_allowed(conn: HTTPConnection, allowed_origins: tuple[str, ...]) -> bool:
    """True when Origin is ours or one the operator allows for CORS."""
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    return origin == own_origin(conn) or origin in allowed_origins


def needs_origin_check(conn: HTTPConnection) -> bool:
    """True for what can change state: a WebSocket, or a method other than GET."""
    return conn.scope["type"] == "websocket" or conn.scope["method"] not in SAFE_METHODS


def set_session_cookie(
    response: Response, conn: HTTPConnection, token: str, max_age: int
) -> None:
    """Keep the token in an HttpOnly cookie that page scripts cannot read."""
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
