"""The benchmark's asyncio clients for what wrk cannot drive: SSE and WebSocket.

Each client records, per reply, when it was asked, when its first chunk came
and when it ended, so the caller can compute throughput, latency and time to
first token. A reply counts as an error unless it ends with its done event.
"""

import asyncio
import http.client
import json
import sys
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

STREAM_END = b"0\r\n\r\n"


@dataclass
class Timings:
    """What a load produced: one entry per finished reply, and the failures."""

    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    errors: int = 0
    conversations: set[str] = field(default_factory=set)

    def add(self, asked: float, first: float | None, ended: float) -> None:
        self.latencies.append(ended - asked)
        if first is not None:
            self.first_chunks.append(first - asked)


async def read_response_head(reader: asyncio.StreamReader) -> bool:
    """Read a response's status line and headers; True when the status is 200."""
    head = await reader.readuntil(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200")


async def post_streams(
    host: str, port: int, token: str, questions: int, deadline: float, out: Timings
) -> None:
    """Ask on one kept-alive connection, one stream after another, until the
    deadline or `questions` streams; each body is read to its last chunk."""
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({"question": "How fast is Privia?"}).encode()
    request = (
        f"POST /api/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        asked_count = 0
        while asked_count < questions and time.perf_counter() < deadline:
            asked_count += 1
            asked = time.perf_counter()
            writer.write(request)
            if not await read_response_head(reader):
                out.errors += 1
                return
            first = None
            received = bytearray()
            # The response is chunked; its zero-length last chunk ends it.
            while not received.endswith(STREAM_END):
                data = await reader.read(65536)
                if not data:
                    break
                if first is None and b"data:" in data:
                    first = time.perf_counter()
                received += data
            if b"event: done" not in received:
                out.errors += 1
                return
            out.add(asked, first, time.perf_counter())
    finally:
        writer.close()


async def ask_over_sockets(
    url: str, questions: int, deadline: float, out: Timings, repeat: bool
) -> None:
    """Ask over one WebSocket; with `repeat`, open the next when it is done,
    until the deadline."""
    await ask_over_socket(url, questions, deadline, out)
    while repeat and time.perf_counter() < deadline:
        await ask_over_socket(url, questions, deadline, out)


async def ask_over_socket(
    url: str, questions: int, deadline: float, out: Timings
) -> None:
    """Open one WebSocket and ask up to `questions` questions in one conversation,
    each after the last reply is done, stopping at the deadline."""
    conversation_id = None
    async with connect(url, open_timeout=60, max_queue=None) as socket:
        for _ in range(questions):
            if time.perf_counter() >= deadline:
                return
            asked = time.perf_counter()
            frame = {"question": "How fast is Privia?"}
            if conversation_id:
                frame["conversation_id"] = conversation_id
            await socket.send(json.dumps(frame))
            first = None
            while True:
                reply = json.loads(await socket.recv())
                if reply["type"] == "token" and first is None:
                    first = time.perf_counter()
                elif reply["type"] == "done":
                    break
                elif reply["type"] == "error":
                    out.errors += 1
                    return
            conversation_id = reply["conversation_id"]
            out.conversations.add(conversation_id)
            out.add(asked, first, time.perf_counter())


async def gather_counting_failures(coroutines: list, out: Timings) -> None:
    """Run every client at once; a client that crashes counts as one error."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    out.errors += sum(isinstance(result, Exception) for result in results)


def probe(host: str, port: int, interval: float) -> None:
    """GET /api/health every `interval` seconds on one connection, printing each
    latency in seconds on its own line, until the process is ended.

    Runs in its own process, so the load clients' busy event loop does not
    delay the probe and inflate what it measures.
    """
    conn = http.client.HTTPConnection(host, port, timeout=60)
    while True:
        started = time.perf_counter()
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        status = "" if response.status == 200 else f" {response.status}"
        print(f"{elapsed:.6f}{status}", flush=True)
        time.sleep(max(0.0, interval - elapsed))


if __name__ == "__main__":
    # python bench/clients.py HOST PORT INTERVAL: the health probe.
    probe(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
