"""The one shape of every Privia error: {"detail": "<what went wrong>"}."""

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("privia")


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Every Privia error response: {"detail": message}."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Render an HTTPException raised by a handler or by routing (404, 405)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def database_error(request: Request, exc: Exception) -> Response:
    """Answer 503 when SQLite stayed locked past the busy timeout; other errors 500."""
    message = str(exc)
    if "locked" in message or "busy" in message:
        log.warning(
            "database busy past the timeout: %s %s", request.method, request.url.path
        )
        return error_response(
            503, "The database is busy; try again shortly", {"Retry-After": "1"}
        )
    raise exc


async def server_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected exception with a JSON 500.

    Starlette re-raises the exception after this response is sent, so uvicorn
    logs it with its traceback; nothing is logged here to avoid saying it twice.
    """
    return error_response(500, "Internal server error")
