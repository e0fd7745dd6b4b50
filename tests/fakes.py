"""A scripted engine, so chat tests know exactly which chunks to expect."""

import asyncio

from engines import EngineError, Reply


class ScriptedEngine:
    """Yields `chunks` in order; raises EngineError before chunk `fail_at` if set.

    It records every call (question and history) and counts how many replies
    were closed, so tests can see that a stopped reply really stopped.
    """

    name = "scripted"

    def __init__(self, chunks=("Hello", ", ", "world"), fail_at=None, delay=0.0):
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.delay = delay
        self.calls = []
        self.yielded = 0
        self.closed = 0

    def reply(self, question, history):
        self.calls.append((question, list(history)))
        reply = Reply(mode="scripted", model="scripted-1")
        reply.chunks = self._run()
        return reply

    async def _run(self):
        try:
            for index, chunk in enumerate(self.chunks):
                if index == self.fail_at:
                    raise EngineError("the scripted engine failed on purpose")
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.yielded += 1
                yield chunk
        finally:
            self.closed += 1

    def health(self):
        return None

    async def aclose(self):
        pass
