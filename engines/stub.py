"""The default engine: a fixed reply that says no model is connected, and how to connect one."""

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from engines import Reply, Turn

STUB_REPLY = (
    "No language model is connected to this Privia yet, so this is a placeholder "
    "reply. To connect one, set PRIVIA_ENGINE=openai and PRIVIA_OPENAI_BASE_URL "
    "to any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio or "
    "OpenAI itself), then restart Privia."
)


class StubEngine:
    """Streams STUB_REPLY a word at a time, optionally paced to mimic a slow model."""

    name = "stub"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def reply(self, question: str, history: Sequence[Turn]) -> Reply:
        reply = Reply(mode="stub")
        reply.chunks = self._words()
        return reply

    async def _words(self) -> AsyncIterator[str]:
        for word in re.findall(r"\S+\s*", STUB_REPLY):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield word

    def health(self) -> None:
        return None

    async def aclose(self) -> None:
        pass
