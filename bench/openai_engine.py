"""How fast the openai engine reads a stream, and what it holds while it does.

Run it by hand: `.venv/bin/python bench/openai_engine.py`. It prints figures and
asserts nothing; the machine it runs on decides the numbers.
"""

import asyncio
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The scriptable model server lives with the tests that use it.
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from engines.events import EventStreamParser  # noqa: E402
from engines.openai import OpenAIEngine  # noqa: E402
from model_server import RunningModelServer, Script, completion, pieces_of  # noqa: E402

TOKENS = 20_000


def bench_parser(body: bytes, size: int) -> None:
    parser = EventStreamParser()
    started = time.perf_counter()
    events = 0
    for piece in pieces_of(body, size):
        events += len(parser.feed(piece))
    seconds = time.perf_counter() - started
    print(
        f"parser, {size:>5}-byte reads: {events} events, "
        f"{len(body) / seconds / 1e6:6.1f} MB/s, {events / seconds:9.0f} events/s"
    )


async def read_reply(base_url: str) -> tuple[int, float]:
    engine = OpenAIEngine(base_url, "bench-model")
    try:
        started = time.perf_counter()
        chunks = 0
        async for _ in engine.reply("Go", []):
            chunks += 1
        return chunks, time.perf_counter() - started
    finally:
        await engine.aclose()


def main() -> None:
    words = [f"word{index} " for index in range(TOKENS)]
    body = completion(*words)
    print(f"stream of {TOKENS} chunks, {len(body) / 1e6:.2f} MB")
    for size in (1, 64, 1024, 16384):
        bench_parser(body if size > 1 else body[:200_000], size)

    server = RunningModelServer().start()
    try:
        server.app.script = Script(pieces_of(body, 4096))
        tracemalloc.start()
        chunks, seconds = asyncio.run(read_reply(server.base_url))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        server.stop()
    print(
        f"engine over HTTP from a local server: {chunks} chunks in {seconds:.2f}s, "
        f"{chunks / seconds:.0f} chunks/s, peak traced memory {peak / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
