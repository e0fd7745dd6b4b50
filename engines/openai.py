"""The openai engine: replies from any server that speaks OpenAI's chat completions.

Ollama, vLLM, llama.cpp's server, LM Studio and OpenAI itself all answer
`POST {base}/chat/completions` with `stream: true` as Server-Sent Events, one
JSON chunk per event, ended by `data: [DONE]`. This engine sends the system
prompt, the history and the question, and yields each chunk's text as it comes.

Everything about one call lives in its Reply and its generator; the engine
itself holds only the settings, the pooled HTTP client and the health probe.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from datetime import datetime, timezone

import httpx

from engines import EngineError, Reply, Turn
from engines.events import EventStreamParser

log = logging.getLogger("privia.engine")

# How much of an error body is read, and how much of its message is passed on.
ERROR_BODY_BYTES = 8192
ERROR_MESSAGE_CHARS = 300
# The most read of a whole completion sent by a server that does not stream.
COMPLETION_BODY_BYTES = 4 * 1024 * 1024
HEALTH_TIMEOUT_SECONDS = 5.0


class OpenAIEngine:
    """Streams replies from an OpenAI-compatible server over one pooled client."""

    name = "openai"
    # How long a probe of the server's model list is trusted by /api/health.
    health_ttl_seconds = 60.0

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        system_prompt: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                "PRIVIA_OPENAI_BASE_URL must be the server's http:// or https:// "
                "address, for example http://127.0.0.1:11434/v1 for Ollama"
            )
        if not model.strip():
            raise ValueError("PRIVIA_MODEL must name the model the server should run")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("PRIVIA_MAX_TOKENS must be at least 1, or unset")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("the openai engine's timeouts must be above zero")

        self.base_url = base_url.rstrip("/")
        self.model = model.strip()
        self._api_key = api_key
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._client: httpx.AsyncClient | None = None
        self._probe: asyncio.Task | None = None
        self._last_probe: dict | None = None
        self._last_probe_at = 0.0

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self.shown_url!r}, model={self.model!r})"

    @property
    def shown_url(self) -> str:
        """The base URL fit for a log line: any user and password in it are dropped."""
        return str(httpx.URL(self.base_url).copy_with(username=None, password=None))

    # Replies

    def reply(self, question: str, history: Sequence[Turn]) -> Reply:
        """Start a reply; the request goes out when its chunks are first read."""
        reply = Reply(mode="chat", model=self.model)
        reply.chunks = self._chunks(reply, self.request_body(question, history))
        return reply

    def request_body(self, question: str, history: Sequence[Turn]) -> dict:
        """The chat-completions request for a question and its history."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages += [{"role": turn.role, "content": turn.content} for turn in history]
        messages.append({"role": "user", "content": question})

        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            # Asks for a last chunk with the token counts; servers without it ignore it.
            # TODO: a server that refuses unknown fields would answer 400 to this, and
            # no setting turns it off yet; matters only if such a server turns up.
            "stream_options": {"include_usage": True},
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    async def _chunks(self, reply: Reply, body: dict) -> AsyncIterator[str]:
        """Yield the reply's text as the server streams it, filling in its metadata.

        Closing this generator, or cancelling the task reading it, leaves the
        `async with` and so closes the HTTP response: the connection is dropped
        and the server stops generating.
        """
        url = f"{self.base_url}/chat/completions"
        headers = self._headers() | {"Accept": "text/event-stream"}
        try:
            async with self._http().stream(
                "POST", url, json=body, headers=headers
            ) as response:
                if response.status_code != 200:
                    raise EngineError(await self._status_error(response))
                content_type = response.headers.get("content-type", "")
                if content_type.startswith("application/json"):
                    # A server that ignored `stream: true` sends one whole completion.
                    raw = await read_start(response, COMPLETION_BODY_BYTES)
                    completion = parse_json(raw.decode(errors="replace"))
                    yield read_completion(reply, completion)
                    return
                async with aclosing(read_stream(reply, response)) as texts:
                    async for text in texts:
                        yield text
        except httpx.HTTPError as error:
            raise EngineError(self.describe_failure(error)) from error
        except EngineError as error:
            # An upstream message could quote the key back; it goes no further.
            if self._api_key and self._api_key in str(error):
                raise EngineError(self._redact(str(error))) from None
            raise

    def _headers(self) -> dict[str, str]:
        if self._api_key:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the running event loop that will use it.
        # TODO: httpx's default pool holds 100 connections; a 101st concurrent reply
        # waits for a free one, up to the read timeout, which matters only at scale.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    # Failures

    async def _status_error(self, response: httpx.Response) -> str:
        """Say why the server refused the request, never repeating the key."""
        status = response.status_code
        upstream = error_message(await read_start(response, ERROR_BODY_BYTES))
        if status in (401, 403):
            return (
                f"The model server refused the API key ({status}); "
                "check PRIVIA_OPENAI_API_KEY"
            )
        if status == 404:
            return (
                f"The model server has no model {self.model!r} (404); check "
                "PRIVIA_MODEL, and that PRIVIA_OPENAI_BASE_URL ends in /v1 or "
                "wherever the server serves /chat/completions"
            )
        if status == 429:
            retry = response.headers.get("retry-after")
            later = f"in {retry} seconds" if retry and retry.isdigit() else "later"
            return (
                "The model server is rate limiting requests or out of quota (429); "
                f"try again {later}"
            )
        cause = f": {upstream}" if upstream else ""
        if status >= 500:
            return f"The model server failed ({status}){cause}"
        return f"The model server rejected the request ({status}){cause}"

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text

    def describe_failure(self, error: httpx.HTTPError) -> str:
        """Say what went wrong talking to the server, in words a user can act on."""
        if isinstance(error, httpx.ConnectTimeout):
            seconds = self.timeout.connect
            return f"The model server did not accept a connection within {seconds:g}s"
        if isinstance(error, httpx.ConnectError):
            return f"Cannot connect to the model server: {error}"
        if isinstance(error, httpx.ReadTimeout):
            seconds = self.timeout.read
            return f"The model server sent nothing for {seconds:g}s and was given up on"
        if isinstance(error, httpx.TimeoutException):
            return "The model server timed out"
        if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
            return "The model server dropped the connection before the reply was done"
        return f"The request to the model server failed ({type(error).__name__})"

    # Health

    def health(self) -> dict:
        """The last probe of the model server; starts a new one when it is stale.

        It never waits on the server: /api/health reports what the last probe
        found, and the next one runs in the background.
        """
        stale = time.monotonic() - self._last_probe_at >= self.health_ttl_seconds
        if (self._last_probe is None or stale) and self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._run_probe())
        return self._last_probe or {"status": "unchecked"}

    async def _run_probe(self) -> None:
        try:
            result = await self.probe()
        finally:
            self._probe = None
        if result["status"] != (self._last_probe or {}).get("status"):
            if result["status"] == "ok":
                log.info("model server at %s answers", self.shown_url)
            else:
                log.warning("model server at %s: %s", self.shown_url, result["detail"])
        self._last_probe = result
        self._last_probe_at = time.monotonic()

    async def probe(self) -> dict:
        """Ask for the server's model list, the cheapest request it answers."""
        checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        timeout = httpx.Timeout(HEALTH_TIMEOUT_SECONDS, connect=self.timeout.connect)
        try:
            response = await self._http().get(
                f"{self.base_url}/models", headers=self._headers(), timeout=timeout
            )
        except httpx.HTTPError as error:
            detail = self.describe_failure(error)
            return {"status": "unreachable", "checked_at": checked_at, "detail": detail}
        if response.status_code != 200:
            detail = f"GET /models answered {response.status_code}"
            return {"status": "failing", "checked_at": checked_at, "detail": detail}
        return {"status": "ok", "checked_at": checked_at}

    async def aclose(self) -> None:
        """Stop a running probe and close the pooled connections."""
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


# Reading the server's answer


async def read_stream(reply: Reply, response: httpx.Response) -> AsyncIterator[str]:
    """Yield the text of each streamed chunk until `data: [DONE]`."""
    parser = EventStreamParser()
    finished = False
    async with aclosing(response.aiter_bytes()) as pieces:
        async for piece in pieces:
            for event in parser.feed(piece):
                if event.data == "[DONE]":
                    return
                if event.event == "error":
                    message = error_message(event.data.encode()) or event.data
                    raise EngineError(
                        "The model server reported an error: "
                        + message[:ERROR_MESSAGE_CHARS]
                    )
                text, finish_reason = read_chunk(reply, parse_json(event.data))
                finished = finished or finish_reason is not None
                if text:
                    yield text

    # Some servers end the body without [DONE]; a finish_reason says the reply is whole.
    if not finished:
        raise EngineError("The model server ended the stream before the reply was done")


def read_chunk(reply: Reply, chunk: object) -> tuple[str, str | None]:
    """The text and finish_reason of one streamed chunk; model and usage go on reply."""
    if not isinstance(chunk, dict):
        raise malformed("a chunk is not an object")
    if "error" in chunk:
        raise EngineError(f"The model server reported an error: {error_message(chunk)}")
    note_metadata(reply, chunk)

    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise malformed("'choices' is not a list")
    text, finish_reason = "", None
    for choice in choices:
        # Privia asks for one choice; a server that sends more gets its first one read.
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        # TODO: the reasoning that thinking models stream in `reasoning_content` is
        # dropped; only the answer in `content` reaches the user and the database.
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise malformed("a chunk's content is not text")
        text += content or ""
        finish_reason = choice.get("finish_reason") or finish_reason
    return text, finish_reason


def read_completion(reply: Reply, completion: object) -> str:
    """The text of a whole, unstreamed completion; its model and usage go on reply."""
    if isinstance(completion, dict) and "error" in completion:
        raise EngineError(
            f"The model server reported an error: {error_message(completion)}"
        )
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise malformed("the completion holds no message") from None
    note_metadata(reply, completion)
    return content if isinstance(content, str) else ""


def note_metadata(reply: Reply, chunk: dict) -> None:
    """Keep the model the server names and the token counts, when it gives them."""
    if isinstance(chunk.get("model"), str) and chunk["model"]:
        reply.model = chunk["model"]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        counts = ("prompt_tokens", "completion_tokens", "total_tokens")
        reply.usage = {
            name: usage[name] for name in counts if isinstance(usage.get(name), int)
        }


def malformed(what: str) -> EngineError:
    return EngineError(f"The model server sent a malformed answer: {what}")


def parse_json(data: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        # The data itself is not quoted: it may hold part of someone's reply.
        raise malformed("a chunk is not JSON") from None


async def read_start(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of a body, so a huge one cannot fill the memory."""
    body = bytearray()
    async with aclosing(response.aiter_bytes()) as pieces:
        async for piece in pieces:
            body += piece
            if len(body) >= limit:
                break
    return bytes(body[:limit])


def error_message(body: bytes | dict) -> str:
    """The message in an error body, whichever of the usual shapes it has."""
    if isinstance(body, bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error", body)
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or ""
    return str(error)[:ERROR_MESSAGE_CHARS] if error else ""
