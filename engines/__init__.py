"""The engine boundary: what the chat routes ask of whatever writes a reply.

An engine gets the question and the conversation's recent history and returns
a `Reply`: an async iterator of text chunks plus the metadata of that one call
(mode, model, sources, usage), which the engine may fill in while it streams.
Everything about a call lives on its Reply, never on the shared engine, so one
engine serves any number of concurrent calls.

Engines know nothing of HTTP or SQL.
"""

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from settings import Settings

log = logging.getLogger("privia.engine")


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation, oldest first in a history."""

    role: str  # "user" or "assistant"
    content: str


class EngineError(Exception):
    """The engine could not produce (the rest of) a reply; the message says why."""


@dataclass
class Reply:
    """One call's answer. Iterate it for the chunks; read the metadata after."""

    mode: str
    model: str | None = None
    sources: list = field(default_factory=list)
    usage: dict | None = None
    chunks: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self.chunks

    async def aclose(self) -> None:
        """Tell the engine to stop writing; safe to call more than once."""
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    def metadata(self) -> dict:
        """The fields every transport reports when the reply is done."""
        done = {"mode": self.mode, "sources": self.sources, "model": self.model}
        if self.usage is not None:
            done["usage"] = self.usage
        return done


class Engine(Protocol):
    name: str

    def reply(self, question: str, history: Sequence[Turn]) -> Reply:
        """Start a reply; no work may happen until its chunks are iterated."""
        ...

    def health(self) -> dict | None:
        """What /api/health says of whatever the engine depends on, or None.

        Called on every health request, so it must answer at once from what
        the engine already knows; any checking happens in the background.
        """
        ...

    async def aclose(self) -> None:
        """Release what the engine holds (connections, pools) at shutdown."""
        ...


def make_engine(settings: Settings) -> Engine:
    """Build the engine the settings name."""
    if settings.engine == "stub":
        from engines.stub import StubEngine

        return StubEngine(delay=settings.stub_delay_ms / 1000)
    if settings.engine == "openai":
        from engines.openai import OpenAIEngine

        engine = OpenAIEngine(
            base_url=settings.openai_base_url,
            model=settings.model,
            api_key=settings.openai_api_key,
            system_prompt=settings.system_prompt,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            connect_timeout=settings.openai_connect_timeout_seconds,
            read_timeout=settings.openai_read_timeout_seconds,
        )
        log.info("engine openai: model %s at %s", engine.model, engine.shown_url)
        return engine
    raise ValueError(
        f"unknown PRIVIA_ENGINE {settings.engine!r}; the engines are: stub, openai"
    )
