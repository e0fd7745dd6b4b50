"""A scriptable OpenAI-compatible model server for tests, run by uvicorn on a free port.

Each test tells it how to answer the next chat completions with a `Script`:
which bytes to send and in how many writes, with which status, and what to do
after (end, stall until the client goes, or drop the connection). It records
every request it gets, and whether the client hung up before it was done.
"""

import asyncio
import json
import threading
from dataclasses import dataclass, field

from live import ThreadServer

MODEL = "test-model-7b"


def chunk(content=None, finish_reason=None, model=MODEL, usage=None, choices=True):
    """One streamed chat-completion chunk as an SSE event."""
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
    body["choices"] = []
    if choices:
        delta = {} if content is None else {"content": content}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


DONE = b"data: [DONE]\n\n"
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def completion(*words, usage=USAGE):
    """A whole streamed completion of `words`, the way OpenAI sends one."""
    events = [chunk(word) for word in words] + [chunk(finish_reason="stop")]
    if usage is not None:
        events.append(chunk(usage=usage, choices=False))
    return b"".join(events) + DONE


def pieces_of(body, size):
    """Cut body into writes of `size` bytes, wherever that falls."""
    return [body[start : start + size] for start in range(0, len(body), size)]


@dataclass
class Script:
    """How the server answers a chat completion."""

    writes: list = field(default_factory=lambda: [completion("Hello", " there")])
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict = field(default_factory=dict)
    pause: float = 0.0  # seconds between writes
    then: str = "end"  # or "stall": wait for the client to go; or "drop"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: object
    hung_up: threading.Event = field(default_factory=threading.Event)


class Dropped(Exception):
    """Raised mid-response so uvicorn cuts the connection."""


class ModelServer:
    """The ASGI app. Set `script`, or `scripts[question]` for one question."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.script = Script()
        self.scripts = {}
        self.models_status = 200
        self.requests = []

    def completions(self):
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        record = Recorded(scope["method"], scope["path"], headers, parse(raw))
        self.requests.append(record)

        if scope["path"].endswith("/models"):
            await respond(send, self.models_status, {"data": [{"id": MODEL}]})
        elif scope["path"].endswith("/chat/completions"):
            await self.complete(record, receive, send)
        else:
            await respond(send, 404, {"error": {"message": "no such route"}})

    async def complete(self, record, receive, send):
        body = record.body if isinstance(record.body, dict) else {}
        messages = body.get("messages") or [{"content": None}]
        question = messages[-1]["content"]
        script = self.scripts.get(question, self.script)

        gone = asyncio.Event()
        watcher = asyncio.create_task(watch(receive, gone, record))
        try:
            headers = [(b"content-type", script.content_type.encode())]
            headers += [(k.encode(), v.encode()) for k, v in script.headers.items()]
            start = {"type": "http.response.start", "status": script.status}
            await send(start | {"headers": headers})
            for write in script.writes:
                more = {"type": "http.response.body", "more_body": True}
                await send(more | {"body": write})
                if script.pause:
                    await asyncio.sleep(script.pause)
            if script.then == "stall":
                await asyncio.wait_for(gone.wait(), 30)
            if script.then == "drop":
                raise Dropped()
            watcher.cancel()
            await send({"type": "http.response.body", "body": b""})
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            watcher.cancel()


async def watch(receive, gone, record):
    """Note the client hanging up while the response is still going."""
    while (await receive())["type"] != "http.disconnect":
        pass
    record.hung_up.set()
    gone.set()


async def respond(send, status, body):
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def parse(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class RunningModelServer(ThreadServer):
    """The ModelServer under uvicorn in a thread of its own, on a free port."""

    def __init__(self):
        self.app = ModelServer()
        super().__init__(
            self.app,
            loop="asyncio",
            lifespan="off",
            log_level="critical",
            timeout_graceful_shutdown=1,
        )
        self.base_url = f"{self.url}/v1"
