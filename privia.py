"""Privia: a self-hosted chat workspace backend.

This module assembles the app: settings, logging, routes, error handlers,
middleware and the lifespan that opens the database. `python privia.py` serves
it; `uvicorn privia:app` does too.

    privia.py            settings.py
        |
    handlers/            auth, conversations, chat, health
        |
    database.py  passwords.py  tokens.py  engines/
"""

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute

from database import Database, apply_schema
from engines import Engine, make_engine
from handlers import auth, chat, conversations, health
from handlers.errors import http_error, server_error
from passwords import PasswordHasher
from settings import Settings, load_settings
from tokens import load_or_create_secret

log = logging.getLogger("privia")

MIN_PRODUCTION_SECRET_BYTES = 32


class RedactTokens(logging.Filter):
    """Hide `token=` query values in uvicorn's lines: WebSocket clients put one there."""

    pattern = re.compile(r"([?&]token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.pattern.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
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


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Starlette:
    """Build the app. Nothing touches the disk until the lifespan starts."""
    settings = settings or load_settings()
    engine = engine or make_engine(settings)
    configure_logging()

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
        Route("/api/auth/signup", auth.signup, methods=["POST"], name="signup"),
        Route("/api/auth/login", auth.login, methods=["POST"], name="login"),
        Route("/api/auth/me", auth.me, methods=["GET"], name="me"),
        Route("/api/auth/oauth", auth.oauth_sign_in, methods=["POST"], name="oauth_sign_in"),
        Route(
            "/api/conversations",
            conversations.list_conversations,
            methods=["GET"],
            name="list_conversations",
        ),
        Route(
            "/api/conversations",
            conversations.create_conversation,
            methods=["POST"],
            name="create_conversation",
        ),
        Route(
            "/api/conversations/{conversation_id}",
            conversations.get_conversation_detail,
            methods=["GET"],
            name="get_conversation",
        ),
        Route(
            "/api/conversations/{conversation_id}",
            conversations.rename_conversation,
            methods=["PATCH"],
            name="rename_conversation",
        ),
        Route(
            "/api/conversations/{conversation_id}",
            conversations.delete_conversation,
            methods=["DELETE"],
            name="delete_conversation",
        ),
        Route("/api/query", chat.answer_question, methods=["POST"], name="answer_question"),
        Route("/api/stream", chat.stream_reply, methods=["POST"], name="stream_reply"),
        WebSocketRoute("/api/ws/chat", chat.chat_socket, name="chat_socket"),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type"],
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = Database(settings.database)
    app.state.hasher = PasswordHasher(settings.password_rounds)
    return app


app = create_app()


def main() -> None:
    settings: Settings = app.state.settings
    # Compressing each small token frame cost more CPU than it saved bytes, and
    # each socket's compressor held memory: 1,000 sockets took 140 MiB, not 92.
    uvicorn.run(
        app, host=settings.host, port=settings.port, ws_per_message_deflate=False
    )


if __name__ == "__main__":
    main()
