"""Chat: one question, one reply, three ways to receive it.

- POST /api/query answers with one JSON body;
- POST /api/stream answers with Server-Sent Events, a chunk per event;
- /api/ws/chat is a WebSocket that takes questions and streams token frames.

Each stores the question before the engine starts and the reply when it ends,
however it ends: done, engine failure, stop, or the client going away.
"""

import asyncio
import json
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass

import anyio
from starlette.exceptions import HTTPException
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from database import Database, utc_now, write_transaction
from engines import Engine, EngineError, Reply, Turn
from handlers.auth import (
    authenticated_user_id,
    request_token,
    require_user,
    user_id_from_token,
)
from handlers.body import read_json_object, text_field
from handlers.conversations import (
    DEFAULT_TITLE,
    find_or_create_empty,
    load_conversation_or_404,
)

log = logging.getLogger("privia.chat")

TITLE_LENGTH = 40
KEEPALIVE_SECONDS = 15.0
ENGINE_FAILED = "The engine failed while writing the reply"
BUSY = 'A reply is already being written; send {"type": "stop"} to stop it first'


# Queries


def list_recent_turns(
    conn: sqlite3.Connection, conversation_id: str, limit: int
) -> list[Turn]:
    """Return the conversation's last `limit` messages as turns, oldest first."""
    rows = conn.execute(
        """
        SELECT role, content
        FROM messages
        WHERE conversation_id = ?
        ORDER BY timestamp DESC, rowid DESC
        LIMIT ?
        """,
        (conversation_id, limit),
    ).fetchall()
    return [Turn(row["role"], row["content"]) for row in reversed(rows)]


def insert_message(
    conn: sqlite3.Connection, conversation_id: str, role: str, content: str
) -> str:
    """Store a message and move the conversation's updated_at; return the message id."""
    message_id = str(uuid.uuid4())
    now = utc_now()
    conn.execute(
        """
        INSERT INTO messages (id, conversation_id, role, content, timestamp)
        VALUES (?, ?, ?, ?, ?)
        """,
        (message_id, conversation_id, role, content, now),
    )
    conn.execute(
        "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
    )
    return message_id


def mark_asked(conn: sqlite3.Connection, conversation_id: str, title: str) -> None:
    """Make the conversation active, titling it if it still has the default title."""
    conn.execute(
        """
        UPDATE conversations
        SET status = 'active',
            title = CASE WHEN title = ? THEN ? ELSE title END
        WHERE id = ?
        """,
        (DEFAULT_TITLE, title, conversation_id),
    )


# Units of work, each run in a worker thread


@dataclass(frozen=True)
class Exchange:
    """A question stored and ready for the engine."""

    conversation_id: str
    question: str
    history: list[Turn]


def title_from(question: str) -> str:
    """The conversation title a first question gives: its first 40 characters."""
    words = " ".join(question.split())
    if len(words) <= TITLE_LENGTH:
        return words
    return words[:TITLE_LENGTH].rstrip() + "..."


def store_question(
    conn: sqlite3.Connection,
    user_id: str,
    conversation_id: str | None,
    question: str,
    history_limit: int,
) -> Exchange:
    """Store the question in the given conversation, or in the user's empty one."""
    require_user(conn, user_id)
    with write_transaction(conn):
        if conversation_id is None:
            conversation = find_or_create_empty(conn, user_id)
        else:
            conversation = load_conversation_or_404(conn, conversation_id, user_id)
        conversation_id = conversation["id"]
        history = list_recent_turns(conn, conversation_id, history_limit)
        insert_message(conn, conversation_id, "user", question)
        mark_asked(conn, conversation_id, title_from(question))
    return Exchange(conversation_id, question, history)


def store_reply(
    conn: sqlite3.Connection, conversation_id: str, content: str
) -> str | None:
    """Store the assistant's reply; None if the conversation was deleted meanwhile."""
    try:
        with write_transaction(conn):
            return insert_message(conn, conversation_id, "assistant", content)
    except sqlite3.IntegrityError:
        log.info(
            "conversation %s was deleted before its reply was stored", conversation_id
        )
        return None


# Running a reply


class _End:
    """The reply's last chunk has been produced."""


@dataclass
class _Failed:
    error: Exception


END = _End()
KEEPALIVE = object()


class ReplyPump:
    """Runs one engine reply in a task of its own.

    The transport waits on `next` with a timeout (so it can send keep-alives
    while the engine is silent) and can `stop` the engine at once, which
    closes the engine's iterator. `parts` holds every chunk produced so far,
    so whatever happens, what the engine wrote can be stored.
    """

    def __init__(self, engine: Engine, exchange: Exchange) -> None:
        self.engine_name = engine.name
        self.reply: Reply | None = None
        self.parts: list[str] = []
        self._queue: asyncio.Queue = asyncio.Queue()
        self._finished = False
        self._task = asyncio.create_task(self._pump(engine, exchange))

    async def _pump(self, engine: Engine, exchange: Exchange) -> None:
        try:
            # Inside the try: an engine that fails to start fails like any other.
            self.reply = engine.reply(exchange.question, exchange.history)
            async for chunk in self.reply:
                self.parts.append(chunk)
                self._queue.put_nowait(chunk)
        except asyncio.CancelledError:
            pass
        except EngineError as error:
            # An expected failure (model server down, refused, cut off): the
            # message says it all; a traceback would only bury it.
            log.warning("engine failed after %d chunks: %s", len(self.parts), error)
            self._queue.put_nowait(_Failed(error))
        except Exception as error:
            log.exception("engine failed after %d chunks", len(self.parts))
            self._queue.put_nowait(_Failed(error))
        finally:
            await self._finish()

    async def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            if self.reply is not None:
                await self.reply.aclose()
            self._queue.put_nowait(END)

    async def next(self, timeout: float | None = None) -> object:
        """The next chunk, END, a _Failed, or KEEPALIVE after timeout seconds of silence."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        # asyncio.timeout, unlike wait_for, needs no extra task per chunk.
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return KEEPALIVE

    async def stop(self) -> None:
        """Stop the engine and wait until its iterator is closed."""
        self._task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({self._task})
            # A task cancelled before it ever ran skipped its finally.
            await self._finish()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def metadata(self) -> dict:
        """The reply's metadata; the engine's name as mode if it never started."""
        return (self.reply or Reply(mode=self.engine_name)).metadata()


def failure_message(error: Exception) -> str:
    """What a client is told about an engine failure; EngineError text is meant for it."""
    return str(error) if isinstance(error, EngineError) else ENGINE_FAILED


async def save_reply(db: Database, conversation_id: str, text: str) -> str | None:
    """Store the reply even while the surrounding task is being cancelled.

    An empty reply (stopped or failed before its first chunk) is not stored: it
    would only reach the engine later as a blank turn of history.
    """
    if not text:
        return None
    with anyio.CancelScope(shield=True):
        return await db.write(store_reply, conversation_id, text)


async def begin_exchange(state: State, user_id: str, body: dict) -> Exchange:
    """Check a chat request's {question, conversation_id?} and store the question.

    Raises 422 for a bad body and 404 for a conversation that is not the user's.
    """
    settings = state.settings
    question = text_field(
        body, "question", strip=False, max_length=settings.max_question_chars
    )
    if not question.strip():
        raise HTTPException(422, "Field 'question' must not be empty")
    conversation_id = text_field(body, "conversation_id", required=False, max_length=64)

    # Counted per user before anything is stored: each question costs a
    # write and an engine call, which one account must not be able to flood.
    wait = state.questions.retry_after(user_id)
    if wait is not None:
        raise HTTPException(
            429,
            f"Too many questions; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    state.questions.add(user_id)

    return await state.db.write(
        store_question,
        user_id,
        conversation_id or None,
        question,
        settings.history_messages,
    )


# POST /api/query


async def answer_question(request: Request) -> JSONResponse:
    """Answer a question with the whole reply in one JSON body."""
    user_id = authenticated_user_id(request)
    body = await read_json_object(request)
    state = request.app.state

    exchange = await begin_exchange(state, user_id, body)
    pump = ReplyPump(state.engine, exchange)
    watcher = asyncio.create_task(stop_when_client_leaves(request, pump))
    try:
        item = await pump.next()
        while isinstance(item, str):
            item = await pump.next()
    finally:
        watcher.cancel()

    message_id = await save_reply(state.db, exchange.conversation_id, pump.text)
    if isinstance(item, _Failed):
        raise HTTPException(502, failure_message(item.error))
    return JSONResponse(
        {
            "answer": pump.text,
            "conversation_id": exchange.conversation_id,
            "message_id": message_id,
        }
        | pump.metadata()
    )


async def stop_when_client_leaves(request: Request, pump: ReplyPump) -> None:
    """Stop the engine if the client hangs up before its one JSON answer is ready.

    The body has been read, so the next message the server sends is the
    disconnect; what the engine wrote until then is stored as usual.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass
    log.info("client left before the reply was done; stopping the engine")
    await pump.stop()


# POST /api/stream


def sse_frame(data: str, event: str | None = None) -> str:
    """One server-sent event. Each line of data gets its own `data:` field, as the
    format requires; a client joins them with "\\n" ("\\r\\n" arrives as "\\n")."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    prefix = f"event: {event}\n" if event else ""
    return prefix + "".join(f"data: {line}\n" for line in lines) + "\n"


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always watches for the client going away.

    When it goes, the body iterator is cancelled and then closed, so its
    `finally` runs at once rather than whenever the next write fails.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        except OSError:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()


async def stream_reply(request: Request) -> EventStreamResponse:
    """Answer a question as Server-Sent Events: a chunk per event, then done."""
    user_id = authenticated_user_id(request)
    body = await read_json_object(request)
    state = request.app.state

    # Everything that can fail with an HTTP status happens before the stream starts.
    exchange = await begin_exchange(state, user_id, body)
    events = reply_events(state.db, state.engine, exchange)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStreamResponse(events, headers=headers)


async def reply_events(db: Database, engine: Engine, exchange: Exchange):
    """Yield the reply's events; store the reply however the stream ends."""
    started = time.monotonic()
    conversation_id = exchange.conversation_id
    pump = ReplyPump(engine, exchange)
    outcome = "disconnected"
    log.info("stream started in conversation %s", conversation_id)
    try:
        item = await pump.next(KEEPALIVE_SECONDS)
        while item is not END and not isinstance(item, _Failed):
            if item is KEEPALIVE:
                yield ": keep-alive\n\n"
            elif item:
                yield sse_frame(item)
            item = await pump.next(KEEPALIVE_SECONDS)

        outcome = "error" if isinstance(item, _Failed) else "done"
        message_id = await save_reply(db, conversation_id, pump.text)
        if isinstance(item, _Failed):
            yield sse_frame(json.dumps({"error": failure_message(item.error)}), "error")
        else:
            done = {"conversation_id": conversation_id, "message_id": message_id}
            yield sse_frame(json.dumps(done | pump.metadata()), "done")
    finally:
        if outcome == "disconnected":
            await pump.stop()
            await save_reply(db, conversation_id, pump.text)
        log.info(
            "stream ended in conversation %s: %s after %.2fs, %d characters",
            conversation_id,
            outcome,
            time.monotonic() - started,
            len(pump.text),
        )


# /api/ws/chat


class SocketError(Exception):
    """A problem with one frame; answered with an error frame, the socket stays open."""


async def chat_socket(websocket: WebSocket) -> None:
    """Take questions over a WebSocket and stream each reply as token frames."""
    db: Database = websocket.app.state.db
    try:
        token = websocket.query_params.get("token") or request_token(websocket)
        user_id = user_id_from_token(websocket, token)
        await db.run(require_user, user_id)
    except HTTPException:
        # 1008, policy violation: the socket is refused before it is accepted.
        await websocket.close(code=1008)
        return

    # TODO: the token is checked once, when the socket opens; a socket kept open
    # outlives the token's expiry and its user's deletion until it closes.
    await websocket.accept()
    await ChatSession(websocket, user_id).run()


class ChatSession:
    """One socket's life: it keeps reading while a reply streams, so a stop
    arrives at once, and it writes one reply at a time."""

    def __init__(self, websocket: WebSocket, user_id: str) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.state = websocket.app.state
        self.pump: ReplyPump | None = None
        self.answering: asyncio.Task | None = None
        self.stopped = False
        self._send_lock = asyncio.Lock()
        self.closed = False

    async def run(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.handle(message.get("text") or message.get("bytes") or "")
        except WebSocketDisconnect:
            pass
        finally:
            self.closed = True
            if self.busy():
                await self.stop()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({self.answering})

    async def handle(self, raw: str | bytes) -> None:
        try:
            frame = self.parse(raw)
        except SocketError as error:
            await self.send({"type": "error", "content": str(error)})
            return

        if frame.get("type") == "stop":
            await self.stop()
        elif self.busy():
            await self.send({"type": "error", "content": BUSY})
        else:
            self.stopped = False
            self.answering = asyncio.create_task(self.answer_safely(frame))

    def parse(self, raw: str | bytes) -> dict:
        """A frame is a JSON object, or plain text taken as the question.

        Text that starts with "{" is meant as JSON, so it must parse as JSON.
        """
        if isinstance(raw, bytes):
            try:
                raw = raw.decode()
            except UnicodeDecodeError:
                raise SocketError("Frames must be UTF-8 text") from None
        if raw.lstrip().startswith("{"):
            try:
                frame = json.loads(raw)
            except ValueError:
                raise SocketError("Frame is not valid JSON") from None
            except RecursionError:
                raise SocketError("Frame is nested too deeply") from None
            if not isinstance(frame, dict):
                raise SocketError("Frame must be a JSON object")
            return frame
        return {"question": raw}

    def busy(self) -> bool:
        return self.answering is not None and not self.answering.done()

    async def stop(self) -> None:
        """Stop the reply being written, even one whose question is still being stored."""
        if self.busy():
            self.stopped = True
            if self.pump is not None:
                await self.pump.stop()

    async def send(self, frame: dict) -> None:
        """Send a frame unless the client has gone; a reply still finishes and is stored."""
        async with self._send_lock:
            if self.closed:
                return
            try:
                await self.websocket.send_json(frame)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def answer_safely(self, frame: dict) -> None:
        """Answer; an unexpected failure becomes an error frame and a log line."""
        try:
            await self.answer(frame)
        except Exception:
            log.exception("socket reply failed")
            await self.send({"type": "error", "content": "The reply failed; try again"})

    async def answer(self, frame: dict) -> None:
        """Store the question, stream the reply, store it, say done."""
        db: Database = self.state.db
        try:
            exchange = await begin_exchange(self.state, self.user_id, frame)
        except HTTPException as error:
            frame = {"type": "error", "content": error.detail}
            if error.headers and "Retry-After" in error.headers:
                frame["retry_after"] = int(error.headers["Retry-After"])
            await self.send(frame)
            return

        started = time.monotonic()
        self.pump = pump = ReplyPump(self.state.engine, exchange)
        if self.stopped:
            # The stop came while the question was being stored.
            await pump.stop()
        log.info("socket reply started in conversation %s", exchange.conversation_id)
        item: object = None
        try:
            item = await pump.next()
            while isinstance(item, str):
                if item:
                    await self.send(
                        {"type": "token", "content": item, "mode": "stream"}
                    )
                item = await pump.next()
        finally:
            self.pump = None
            await pump.stop()
            message_id = await save_reply(db, exchange.conversation_id, pump.text)
            if self.stopped:
                outcome = "stopped"
            else:
                outcome = "error" if isinstance(item, _Failed) else "done"
            log.info(
                "socket reply ended in conversation %s: %s after %.2fs, %d characters",
                exchange.conversation_id,
                outcome,
                time.monotonic() - started,
                len(pump.text),
            )

        if isinstance(item, _Failed):
            await self.send({"type": "error", "content": failure_message(item.error)})
        done = {
            "type": "done",
            "conversation_id": exchange.conversation_id,
            "message_id": message_id,
            "stopped": self.stopped,
        }
        await self.send(done | pump.metadata())
