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


def origins(value: str) -> tuple[str, ...]:
    return tuple(CommaSeparatedStrings(value))


# Each setting's environment variable and how its text is read; a variable that
# is not set leaves the default in `Settings`.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "env": ("ENV", str),
    "host": ("HOST", str),
    "port": ("PORT", int),
    "database": ("PRIVIA_DATABASE", Path),
    "secret_key": ("PRIVIA_SECRET_KEY", optional(str)),
    "token_ttl_seconds": ("PRIVIA_TOKEN_TTL_SECONDS", int),
    "allowed_origins": ("PRIVIA_ALLOWED_ORIGINS", origins),
    "oauth_secret": ("PRIVIA_OAUTH_SECRET", str),
    "google_client_id": ("PRIVIA_GOOGLE_CLIENT_ID", str),
    "google_client_secret": ("PRIVIA_GOOGLE_CLIENT_SECRET", str),
    "github_client_id": ("PRIVIA_GITHUB_CLIENT_ID", str),
    "github_client_secret": ("PRIVIA_GITHUB_CLIENT_SECRET", str),
    "engine": ("PRIVIA_ENGINE", str),
    "stub_delay_ms": ("PRIVIA_STUB_DELAY_MS", int),
    "openai_base_url": ("PRIVIA_OPENAI_BASE_URL", str),
    "openai_api_key": ("PRIVIA_OPENAI_API_KEY", str),
    "model": ("PRIVIA_MODEL", str),
    "system_prompt": ("PRIVIA_SYSTEM_PROMPT", str),
    "temperature": ("PRIVIA_TEMPERATURE", optional(float)),
    "max_tokens": ("PRIVIA_MAX_TOKENS", optional(int)),
    "openai_connect_timeout_seconds": ("PRIVIA_OPENAI_CONNECT_TIMEOUT_SECONDS", float),
    "openai_read_timeout_seconds": ("PRIVIA_OPENAI_READ_TIMEOUT_SECONDS", float),
    "history_messages": ("PRIVIA_HISTORY_MESSAGES", int),
    "conversation_cooldown_seconds": ("PRIVIA_CONVERSATION_COOLDOWN_SECONDS", float),
    "password_rounds": ("PRIVIA_PASSWORD_ROUNDS", int),
    "max_question_chars": ("PRIVIA_MAX_QUESTION_CHARS", int),
    "login_max_failures": ("PRIVIA_LOGIN_MAX_FAILURES", int),
    "login_max_failures_per_address": ("PRIVIA_LOGIN_MAX_FAILURES_PER_ADDRESS", int),
    "login_window_seconds": ("PRIVIA_LOGIN_WINDOW_SECONDS", float),
    "signups_per_hour": ("PRIVIA_SIGNUPS_PER_HOUR", int),
    "questions_per_minute": ("PRIVIA_QUESTIONS_PER_MINUTE", int),
    "max_body_bytes": ("PRIVIA_MAX_BODY_BYTES", int),
}


def load_settings(env_file: str | Path = ".env") -> Settings:
    """Read the settings from the environment and the optional .env file."""
    config = Config(env_file if Path(env_file).is_file() else None)
    given = {
        name: config(variable, cast=cast, default=None)
        for name, (variable, cast) in ENVIRONMENT.items()
    }
    return Settings(
        **{name: value for name, value in given.items() if value is not None}
    )
