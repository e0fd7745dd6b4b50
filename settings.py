"""Privia's settings: every environment variable it reads, in one table.

Values come from the process environment, then from a `.env` file in the
working directory when there is one. Each is cast once, here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings

VERSION = "0.1.0"

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    database: Path = Path("data/privia.db")
    # None means: use the key kept beside the database, creating it once.
    secret_key: str | None = field(default=None, repr=False)
    token_ttl_seconds: int = 24 * 3600
    allowed_origins: tuple[str, ...] = ("http://localhost:3000",)
    oauth_secret: str = field(default="", repr=False)
    # Sign-in with Google or GitHub from the web app; each is on when both are set.
    google_client_id: str = ""
    google_client_secret: str = field(default="", repr=False)
    github_client_id: str = ""
    github_client_secret: str = field(default="", repr=False)
    engine: str = "stub"
    stub_delay_ms: int = 0
    # The openai engine: any server that speaks OpenAI's chat-completions protocol.
    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    model: str = ""
    system_prompt: str = ""
    # None leaves the choice to the model server.
    temperature: float | None = None
    max_tokens: int | None = None
    openai_connect_timeout_seconds: float = 5.0
    openai_read_timeout_seconds: float = 120.0
    history_messages: int = 20
    conversation_cooldown_seconds: float = 3.0
    password_rounds: int = 600_000
    max_question_chars: int = 32_000
    # Abuse limits; 0 turns each one off.
    login_max_failures: int = 10
    login_max_failures_per_address: int = 100
    login_window_seconds: float = 900.0
    signups_per_hour: int = 20
    questions_per_minute: int = 60
    max_body_bytes: int = 1024 * 1024

    @property
    def production(self) -> bool:
        return self.env == "production"


def optional(cast: Callable[[str], T]) -> Callable[[str], T | None]:
    """A cast that reads an empty value as None, so a setting can be left unset."""

    def read(value: str) -> T | None:
        return cast(value) if value.strip() else None

    return read


def load_settings(env_file: str | Path = ".env") -> Settings:
    """Read the settings from the environment and the optional .env file."""
    config = Config(env_file if Path(env_file).is_file() else None)
    defaults = Settings()
    return Settings(
        env=config("ENV", default=defaults.env),
        host=config("HOST", default=defaults.host),
        port=config("PORT", cast=int, default=defaults.port),
        database=config("PRIVIA_DATABASE", cast=Path, default=defaults.database),
        secret_key=config("PRIVIA_SECRET_KEY", default=None) or None,
        token_ttl_seconds=config(
            "PRIVIA_TOKEN_TTL_SECONDS", cast=int, default=defaults.token_ttl_seconds
        ),
        allowed_origins=tuple(
            config(
                "PRIVIA_ALLOWED_ORIGINS",
                cast=CommaSeparatedStrings,
                default=",".join(defaults.allowed_origins),
            )
        ),
        oauth_secret=config("PRIVIA_OAUTH_SECRET", default=""),
        google_client_id=config("PRIVIA_GOOGLE_CLIENT_ID", default=""),
        google_client_secret=config("PRIVIA_GOOGLE_CLIENT_SECRET", default=""),
        github_client_id=config("PRIVIA_GITHUB_CLIENT_ID", default=""),
        github_client_secret=config("PRIVIA_GITHUB_CLIENT_SECRET", default=""),
        engine=config("PRIVIA_ENGINE", default=defaults.engine),
        stub_delay_ms=config(
            "PRIVIA_STUB_DELAY_MS", cast=int, default=defaults.stub_delay_ms
        ),
        openai_base_url=config("PRIVIA_OPENAI_BASE_URL", default=""),
        openai_api_key=config("PRIVIA_OPENAI_API_KEY", default=""),
        model=config("PRIVIA_MODEL", default=""),
        system_prompt=config("PRIVIA_SYSTEM_PROMPT", default=""),
        temperature=config("PRIVIA_TEMPERATURE", cast=optional(float), default=""),
        max_tokens=config("PRIVIA_MAX_TOKENS", cast=optional(int), default=""),
        openai_connect_timeout_seconds=config(
            "PRIVIA_OPENAI_CONNECT_TIMEOUT_SECONDS",
            cast=float,
            default=defaults.openai_connect_timeout_seconds,
        ),
        openai_read_timeout_seconds=config(
            "PRIVIA_OPENAI_READ_TIMEOUT_SECONDS",
            cast=float,
            default=defaults.openai_read_timeout_seconds,
        ),
        history_messages=config(
            "PRIVIA_HISTORY_MESSAGES", cast=int, default=defaults.history_messages
        ),
        conversation_cooldown_seconds=config(
            "PRIVIA_CONVERSATION_COOLDOWN_SECONDS",
            cast=float,
            default=defaults.conversation_cooldown_seconds,
        ),
        password_rounds=config(
            "PRIVIA_PASSWORD_ROUNDS", cast=int, default=defaults.password_rounds
        ),
        max_question_chars=config(
            "PRIVIA_MAX_QUESTION_CHARS", cast=int, default=defaults.max_question_chars
        ),
        login_max_failures=config(
            "PRIVIA_LOGIN_MAX_FAILURES", cast=int, default=defaults.login_max_failures
        ),
        login_max_failures_per_address=config(
            "PRIVIA_LOGIN_MAX_FAILURES_PER_ADDRESS",
            cast=int,
            default=defaults.login_max_failures_per_address,
        ),
        login_window_seconds=config(
            "PRIVIA_LOGIN_WINDOW_SECONDS",
            cast=float,
            default=defaults.login_window_seconds,
        ),
        signups_per_hour=config(
            "PRIVIA_SIGNUPS_PER_HOUR", cast=int, default=defaults.signups_per_hour
        ),
        questions_per_minute=config(
            "PRIVIA_QUESTIONS_PER_MINUTE",
            cast=int,
            default=defaults.questions_per_minute,
        ),
        max_body_bytes=config(
            "PRIVIA_MAX_BODY_BYTES", cast=int, default=defaults.max_body_bytes
        ),
    )
