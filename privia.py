"""Privia: a self-hosted chat workspace backend.

This module assembles the app: settings, logging, routes, error handlers,
middleware and the lifespan that opens the database. `python privia.py` serves
it; `uvicorn privia:app` does too, with uvicorn's own WebSocket frame limit
and compression rather than the ones `main` sets.

    privia.py                                     settings.py
        |
    handlers/      auth, conversations, chat, health, web, openapi
        |
    database.py  passwords.py  tokens.py  limits.py  engines/
    oauth.py  web_session.py  web_files.py
    oauth.py  web_session.py  web_files.py
"""

import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import unquote_plus

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp

from database import Database, apply_schema
from engines import Engine, make_engine
from handlers import auth, chat, conversations, health, openapi, web
from handlers.errors import database_error, http_error, server_error
from handlers.middleware import BodySizeLimit, SecurityHeaders
from limits import RateLimit
from oauth import configured_providers
from passwords import PasswordHasher
from settings import Settings, load_settings
from tokens import load_or_create_secret
from web_files import static_files

log = logging.getLogger("privia")

MIN_PRODUCTION_SECRET_BYTES = 32


class RedactTokens(logging.Filter):
    """Hide `token` query values in uvicorn's lines: WebSocket clients put one there.

    The key is matched after percent-decoding, as Starlette reads it, so
    `%74oken=...` is hidden too.
    """

    parameter = re.compile(r"([?&])([^=&\s\"]*)=([^&\s\"]*)")

    def redact(self, match: re.Match) -> str:
        separator, key, _ = match.groups()
        if unquote_plus(key).lower() != "token":
            return match.group(0)
        return f"{separator}{key}=[redacted]"

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.parameter.sub(self.redact, arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def configure_logging() -> None:
    """Give the `privia` loggers a handler (uvicorn configures only its own)."""
    privia = logging.getLogger("privia")
    if not privia.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        privia.addHandler(handler)
        privia.setLevel(logging.INFO)
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def signing_key(settings: Settings) -> str:
    """The JWT key: the setting, else one kept beside the database."""
    key = settings.secret_key or load_or_create_secret(
        settings.database.parent / "secret_key"
    )
    if settings.production and len(key.encode()) < MIN_PRODUCTION_SECRET_BYTES:
        raise RuntimeError(
            f"PRIVIA_SECRET_KEY is {len(key.encode())} bytes; in production it must "
            f"be at least {MIN_PRODUCTION_SECRET_BYTES} so tokens cannot be forged "
            "by guessing it. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key


class Privia(Starlette):
    """Starlette with some middleware outside its error handling, so that a 500
    passes through it too (CORS headers, security headers)."""

    def __init__(self, *args, outer_middleware: Sequence[Middleware] = (), **kwargs):
        self.outer_middleware = list(outer_middleware)
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outer_middleware):
            app = cls(app, *args, **kwargs)
        return app


def by_method(**endpoints: Callable) -> Callable:
    """One endpoint for a path that several handlers serve, one per HTTP method.

    Starlette's 405 then lists every method of the path in its Allow header.
    """

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def create_app(
    settings: Settings | None = None, engine: Engine | None = None
) -> Privia:
    """Build the app. Nothing touches the disk until the lifespan starts."""
    configure_logging()
    settings = settings or load_settings()
    engine = engine or make_engine(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(apply_schema, settings.database)
        app.state.secret_key = await anyio.to_thread.run_sync(signing_key, settings)
        app.state.started = time.monotonic()
        log.info(
            "Privia %s serving: database %s, engine %s, allowed origins %s",
            settings.env,
            settings.database,
            engine.name,
            ", ".join(settings.allowed_origins) or "none",
        )
        try:
            yield
        finally:
            await engine.aclose()
            log.info("Privia stopped")

    routes = [
        Route("/api/health", health.health, methods=["GET"], name="health"),
        Route("/api/health/", health.health, methods=["GET"], name="health_slash"),
        Route(
            "/api/openapi.json",
            openapi.get_openapi,
            methods=["GET"],
            name="get_openapi",
        ),
        Route("/api/auth/signup", auth.signup, methods=["POST"], name="signup"),
        Route("/api/auth/login", auth.login, methods=["POST"], name="login"),
        Route("/api/auth/me", auth.me, methods=["GET"], name="me"),
        Route(
            "/api/auth/oauth",
            auth.oauth_sign_in,
            methods=["POST"],
            name="oauth_sign_in",
        ),
        Route(
            "/api/conversations",
            by_method(
                GET=conversations.list_conversations,
                POST=conversations.create_conversation,
            ),
            methods=["GET", "POST"],
            name="conversations",
        ),
        Route(
            "/api/conversations/{conversation_id}",
            by_method(
                GET=conversations.get_conversation_detail,
                PATCH=conversations.rename_conversation,
                DELETE=conversations.delete_conversation,
            ),
            methods=["GET", "PATCH", "DELETE"],
            name="conversation",
        ),
        Route(
            "/api/query", chat.answer_question, methods=["POST"], name="answer_question"
        ),
        Route("/api/stream", chat.stream_reply, methods=["POST"], name="stream_reply"),
        WebSocketRoute("/api/ws/chat", chat.chat_socket, name="chat_socket"),
        *web_routes(),
    ]
    outer_middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type"],
            # A browser shows a script only the headers it is told it may.
            expose_headers=["Retry-After"],
        ),
    ]
    app = Privia(
        routes=routes,
        middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)],
        outer_middleware=outer_middleware,
        exception_handlers={
            HTTPException: http_error,
            sqlite3.OperationalError: database_error,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = Database(settings.database)
    app.state.hasher = PasswordHasher(settings.password_rounds)
    window = settings.login_window_seconds
    app.state.login_failures_by_account = RateLimit(settings.login_max_failures, window)
    app.state.login_failures_by_address = RateLimit(
        settings.login_max_failures_per_address, window
    )
    app.state.signups = RateLimit(settings.signups_per_hour, 3600)
    app.state.questions = RateLimit(settings.questions_per_minute, 60)
    app.state.oauth_providers = configured_providers(settings)
    return app


def web_routes() -> list[Route | Mount]:
    """The web app: its pages, its session and its static files."""
    return [
        Route("/", web.show_landing, methods=["GET"], name="show_landing"),
        Route("/login", web.show_login, methods=["GET"], name="show_login"),
        Route("/signup", web.show_signup, methods=["GET"], name="show_signup"),
        Route("/app", web.show_workspace, methods=["GET"], name="show_workspace"),
        Route("/auth/sign-in", web.sign_in, methods=["POST"], name="sign_in"),
        Route("/auth/sign-out", web.sign_out, methods=["POST"], name="sign_out"),
        Route(
            "/auth/providers",
            web.list_providers,
            methods=["GET"],
            name="list_providers",
        ),
        Route("/auth/{provider}", web.start_oauth, methods=["GET"], name="start_oauth"),
        Route(
            "/auth/{provider}/callback",
            web.finish_oauth,
            methods=["GET"],
            name="finish_oauth",
        ),
        Mount("/static", app=static_files(), name="static"),
    ]


app = create_app()


def main() -> None:
    settings: Settings = app.state.settings
    # uvicorn closes a WebSocket whose frame is over ws_max_size (code 1009).
    # Compressing each small token frame cost more CPU than it saved bytes, and
    # each socket's compressor held memory: 1,000 sockets took 140 MiB, not 92.
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise,
    # which would let any local client pick the address the login limits
    # count; only an operator's FORWARDED_ALLOW_IPS turns it on.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers="FORWARDED_ALLOW_IPS" in os.environ,
        ws_max_size=settings.max_body_bytes,
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
