import asyncio
import json
import sqlite3

import pytest
from starlette.websockets import WebSocketDisconnect

from engines import EngineError
from fakes import ScriptedEngine
from handlers.chat import BUSY, title_from
from sse import parse_events

AWKWARD = ["a\nb", "\r\n", "", "trailing  ", "emoji 🦊🎉", "x" * 100_000, "end\n"]


def stored_messages(settings):
    with sqlite3.connect(settings.database) as conn:
        return conn.execute(
            "SELECT role, content FROM messages ORDER BY timestamp, rowid"
        ).fetchall()


def conversation_row(settings, conversation_id):
    with sqlite3.connect(settings.database) as conn:
        return conn.execute(
            "SELECT title, status FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()


# /api/query


def test_query_answers_and_stores_both_messages(client, headers, settings, engine):
    response = client.post("/api/query", json={"question": "Hi there"}, headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "Hello, world"
    assert body["mode"] == "scripted"
    assert body["sources"] == []
    assert stored_messages(settings) == [
        ("user", "Hi there"),
        ("assistant", "Hello, world"),
    ]
    assert conversation_row(settings, body["conversation_id"]) == ("Hi there", "active")


def test_query_uses_the_empty_conversation(client, headers):
    created = client.post("/api/conversations", headers=headers).json()
    body = client.post("/api/query", json={"question": "Hi"}, headers=headers).json()
    assert body["conversation_id"] == created["id"]


def test_query_sends_the_history_to_the_engine(client, headers, engine):
    first = client.post("/api/query", json={"question": "one"}, headers=headers).json()
    body = {"question": "two", "conversation_id": first["conversation_id"]}
    client.post("/api/query", json=body, headers=headers)

    question, history = engine.calls[-1]
    assert question == "two"
    assert [(t.role, t.content) for t in history] == [
        ("user", "one"),
        ("assistant", "Hello, world"),
    ]


def test_only_the_first_question_titles_the_conversation(client, headers, settings):
    long_question = "Tell me everything about the history of the printing press"
    first = client.post("/api/query", json={"question": long_question}, headers=headers)
    conversation_id = first.json()["conversation_id"]
    body = {"question": "and more", "conversation_id": conversation_id}
    client.post("/api/query", json=body, headers=headers)

    title, _ = conversation_row(settings, conversation_id)
    assert title == "Tell me everything about the history of..."


def test_a_renamed_empty_conversation_keeps_its_title(client, headers, settings):
    created = client.post("/api/conversations", headers=headers).json()
    url = f"/api/conversations/{created['id']}"
    client.patch(url, json={"title": "Mine"}, headers=headers)
    client.post("/api/query", json={"question": "Hi"}, headers=headers)
    assert conversation_row(settings, created["id"]) == ("Mine", "active")


@pytest.mark.parametrize(
    "question, title",
    [
        ("short", "short"),
        ("  spaced\n\nout  ", "spaced out"),
        ("x" * 40, "x" * 40),
        ("x" * 41, "x" * 40 + "..."),
    ],
)
def test_title_from(question, title):
    assert title_from(question) == title


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"question": ""},
        {"question": "   \n"},
        {"question": 3},
        {"question": ["a"]},
        {"question": "hi", "conversation_id": 5},
    ],
)
def test_query_rejects_bad_questions(client, headers, settings, body):
    response = client.post("/api/query", json=body, headers=headers)
    assert response.status_code == 422
    assert stored_messages(settings) == []


def test_query_rejects_an_oversized_question(client, headers, settings):
    question = "x" * (settings.max_question_chars + 1)
    response = client.post("/api/query", json={"question": question}, headers=headers)
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/api/query", "/api/stream"])
def test_chat_in_another_users_conversation_is_404(client, auth, settings, path):
    ada = auth.headers("ada@example.com")
    bob = auth.headers("bob@example.com")
    answer = client.post("/api/query", json={"question": "mine"}, headers=ada).json()

    body = {"question": "let me in", "conversation_id": answer["conversation_id"]}
    response = client.post(path, json=body, headers=bob)

    assert response.status_code == 404
    assert len(stored_messages(settings)) == 2


@pytest.mark.parametrize("path", ["/api/query", "/api/stream"])
def test_chat_in_an_unknown_conversation_is_404(client, headers, settings, path):
    body = {"question": "hello", "conversation_id": "no-such-id"}
    assert client.post(path, json=body, headers=headers).status_code == 404
    assert stored_messages(settings) == []


def test_lone_surrogate_in_a_question_is_422(client, headers, settings):
    raw = b'{"question": "hello \\ud83d there"}'
    response = client.post("/api/query", content=raw, headers=headers)
    assert response.status_code == 422
    assert stored_messages(settings) == []


class FailsToStart(ScriptedEngine):
    """An engine whose reply() itself raises, as one that cannot reach its model."""

    def reply(self, question, history):
        self.calls.append((question, list(history)))
        raise EngineError("the model server is unreachable")


@pytest.mark.parametrize("engine", [FailsToStart()])
def test_query_engine_failing_to_start_is_502(client, headers, settings):
    response = client.post("/api/query", json={"question": "Hi"}, headers=headers)
    assert response.status_code == 502
    assert response.json() == {"detail": "the model server is unreachable"}
    assert stored_messages(settings) == [("user", "Hi")]


@pytest.mark.parametrize("engine", [FailsToStart()])
def test_stream_engine_failing_to_start_sends_an_error_event(client, headers):
    events = parse_events(stream(client, headers).text)
    assert events == [
        ("error", json.dumps({"error": "the model server is unreachable"}))
    ]


@pytest.mark.parametrize("engine", [FailsToStart()])
def test_socket_engine_failing_to_start_sends_an_error_frame(client, headers):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_text("Hi")
        frames = receive_until_done(ws)
    assert frames[0] == {"type": "error", "content": "the model server is unreachable"}
    assert frames[1]["message_id"] is None and frames[1]["stopped"] is False


@pytest.mark.parametrize(
    "engine", [ScriptedEngine(["part", "ial", "never"], fail_at=2)]
)
def test_query_engine_failure_is_502_and_keeps_the_question(client, headers, settings):
    response = client.post("/api/query", json={"question": "Hi"}, headers=headers)
    assert response.status_code == 502
    assert response.json() == {"detail": "the scripted engine failed on purpose"}
    assert stored_messages(settings) == [("user", "Hi"), ("assistant", "partial")]


# POST /api/stream


def stream(client, headers, question="Hi", **fields):
    body = {"question": question} | fields
    response = client.post("/api/stream", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("engine", [ScriptedEngine(AWKWARD)])
def test_stream_gives_back_every_chunk(client, headers, settings, engine):
    response = stream(client, headers)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_events(response.text)
    chunks = [data for kind, data in events if kind == "message"]
    # A CR cannot travel in an event stream: the format turns "\r\n" into "\n".
    expected = [c.replace("\r\n", "\n") for c in AWKWARD if c]
    assert chunks == expected
    assert events[-1][0] == "done"
    assert stored_messages(settings)[-1] == ("assistant", "".join(AWKWARD))


def test_stream_done_event_carries_the_metadata(client, headers, settings):
    events = parse_events(stream(client, headers).text)
    kind, data = events[-1]
    done = json.loads(data)

    assert kind == "done"
    assert done["mode"] == "scripted"
    assert done["model"] == "scripted-1"
    assert done["sources"] == []
    with sqlite3.connect(settings.database) as conn:
        role, content = conn.execute(
            "SELECT role, content FROM messages WHERE id = ?", (done["message_id"],)
        ).fetchone()
    assert (role, content) == ("assistant", "Hello, world")


@pytest.mark.parametrize(
    "engine", [ScriptedEngine(["half ", "way ", "there"], fail_at=2)]
)
def test_stream_engine_failure_sends_an_error_event(client, headers, settings):
    events = parse_events(stream(client, headers).text)

    assert events[:2] == [("message", "half "), ("message", "way ")]
    assert events[-1] == (
        "error",
        json.dumps({"error": "the scripted engine failed on purpose"}),
    )
    assert stored_messages(settings)[-1] == ("assistant", "half way ")


@pytest.mark.parametrize("engine", [ScriptedEngine(["slow ", "reply"], delay=0.3)])
def test_stream_sends_keepalives_while_the_engine_is_silent(
    client, headers, monkeypatch
):
    import handlers.chat

    monkeypatch.setattr(handlers.chat, "KEEPALIVE_SECONDS", 0.05)
    text = stream(client, headers).text

    assert ": keep-alive\n\n" in text
    chunks = [data for kind, data in parse_events(text) if kind == "message"]
    assert chunks == ["slow ", "reply"]


def test_stream_needs_a_token(client):
    assert client.post("/api/stream", json={"question": "Hi"}).status_code == 401


def test_stream_rejects_an_empty_question_before_streaming(client, headers):
    response = client.post("/api/stream", json={"question": " "}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "engine", [ScriptedEngine(["one ", "two ", "three "] * 50, delay=0.01)]
)
def test_stream_disconnect_stores_the_partial_reply(
    app, client, headers, settings, engine
):
    """Drive the ASGI app directly, so the client can leave after two events."""
    body = json.dumps({"question": "Hi"}).encode()
    sent = []

    async def run():
        gone = asyncio.Event()
        requested = False

        async def receive():
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
            if len([m for m in sent if m.get("body")]) == 2:
                gone.set()

        raw_headers = [(b"content-type", b"application/json")] + [
            (k.lower().encode(), v.encode()) for k, v in headers.items()
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/stream",
            "raw_path": b"/api/stream",
            "query_string": b"",
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "state": {},
        }
        await app(scope, receive, send)

    client.portal.call(run)

    assert engine.closed == 1
    assert 2 <= engine.yielded < len(engine.chunks)
    question, reply = stored_messages(settings)
    assert question == ("user", "Hi")
    assert reply[0] == "assistant"
    assert reply[1] == "".join(engine.chunks[: engine.yielded])


# /api/ws/chat


def token_of(headers):
    return headers["Authorization"].removeprefix("Bearer ")


def receive_until_done(ws):
    frames = []
    while True:
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] == "done":
            return frames


def test_socket_streams_tokens_then_done(client, headers, settings):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Hi"})
        frames = receive_until_done(ws)

    tokens = [f for f in frames if f["type"] == "token"]
    assert [f["content"] for f in tokens] == ["Hello", ", ", "world"]
    assert all(f["mode"] == "stream" for f in tokens)
    done = frames[-1]
    assert done["stopped"] is False
    assert done["mode"] == "scripted"
    assert done["sources"] == []
    assert stored_messages(settings) == [("user", "Hi"), ("assistant", "Hello, world")]


def test_socket_takes_plain_text_and_a_header_token(client, headers):
    with client.websocket_connect("/api/ws/chat", headers=headers) as ws:
        ws.send_text("Just text")
        assert receive_until_done(ws)[-1]["type"] == "done"


def test_socket_takes_text_that_only_looks_like_json_as_a_question(
    client, headers, engine
):
    with client.websocket_connect("/api/ws/chat", headers=headers) as ws:
        ws.send_text("[citation needed] what is this?")
        assert receive_until_done(ws)[-1]["type"] == "done"
    assert engine.calls[0][0] == "[citation needed] what is this?"


def test_socket_takes_the_cookie_from_our_own_origin(client, auth):
    auth.signup()
    client.cookies.set("auth-token", auth.login())
    origin = {"Origin": "http://testserver"}
    with client.websocket_connect("/api/ws/chat", headers=origin) as ws:
        ws.send_json({"question": "Hi"})
        assert receive_until_done(ws)[-1]["type"] == "done"


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://elsewhere.example"}])
def test_socket_with_the_cookie_alone_from_another_origin_is_closed_1008(
    client, auth, headers
):
    auth.signup()
    client.cookies.set("auth-token", auth.login())
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/api/ws/chat", headers=headers):
            pass
    assert closed.value.code == 1008


@pytest.mark.parametrize("query", ["", "?token=forged"])
def test_socket_without_a_good_token_is_closed_1008(client, query):
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect(f"/api/ws/chat{query}"):
            pass
    assert closed.value.code == 1008


@pytest.mark.parametrize("engine", [ScriptedEngine(["word "] * 200, delay=0.01)])
def test_socket_stop_keeps_the_partial_reply(client, headers, settings, engine):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Go on"})
        assert ws.receive_json()["type"] == "token"
        ws.send_json({"type": "stop"})
        frames = receive_until_done(ws)

    done = frames[-1]
    assert done["stopped"] is True
    assert engine.closed == 1
    stored = stored_messages(settings)[-1]
    assert stored[0] == "assistant"
    assert 0 < len(stored[1]) < len("word ") * 200
    with sqlite3.connect(settings.database) as conn:
        content = conn.execute(
            "SELECT content FROM messages WHERE id = ?", (done["message_id"],)
        ).fetchone()[0]
    assert content == stored[1]


@pytest.mark.parametrize("engine", [ScriptedEngine(["word "] * 200, delay=0.01)])
def test_socket_answers_one_question_at_a_time(client, headers, engine):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "first"})
        assert ws.receive_json()["type"] == "token"
        ws.send_json({"question": "second"})
        frames = []
        while not any(f["type"] == "error" for f in frames):
            frames.append(ws.receive_json())
        ws.send_json({"type": "stop"})
        frames += receive_until_done(ws)
    assert [q for q, _ in engine.calls] == ["first"]
    assert [f for f in frames if f["type"] == "error"] == [
        {"type": "error", "content": BUSY}
    ]
    assert frames[-1]["stopped"] is True


@pytest.mark.parametrize("engine", [ScriptedEngine(["word "] * 200, delay=0.01)])
def test_socket_stop_right_after_the_question_stops_at_once(
    client, headers, settings, engine
):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Go on"})
        ws.send_json({"type": "stop"})
        frames = receive_until_done(ws)

    assert frames[-1]["stopped"] is True
    assert engine.yielded < 200
    assert stored_messages(settings)[0] == ("user", "Go on")


def test_socket_question_with_a_lone_surrogate_gets_an_error_frame(client, headers):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_text('{"question": "bad \\ud800 text"}')
        frame = ws.receive_json()
    assert frame["type"] == "error" and "Unicode" in frame["content"]


def test_socket_survives_a_bad_frame(client, headers, settings):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_text("{not json")
        assert ws.receive_json() == {
            "type": "error",
            "content": "Frame is not valid JSON",
        }
        ws.send_json({"question": "   "})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"question": "Now a real one"})
        assert receive_until_done(ws)[-1]["type"] == "done"
    assert stored_messages(settings)[0] == ("user", "Now a real one")


def test_socket_refuses_another_users_conversation(client, auth, settings):
    ada = auth.headers("ada@example.com")
    bob = auth.headers("bob@example.com")
    answer = client.post("/api/query", json={"question": "mine"}, headers=ada).json()

    with client.websocket_connect(f"/api/ws/chat?token={token_of(bob)}") as ws:
        ws.send_json(
            {"question": "let me in", "conversation_id": answer["conversation_id"]}
        )
        assert ws.receive_json() == {
            "type": "error",
            "content": "Conversation not found",
        }

    assert len(stored_messages(settings)) == 2


@pytest.mark.parametrize(
    "engine", [ScriptedEngine(["ok ", "then ", "boom"], fail_at=2)]
)
def test_socket_engine_failure_sends_error_then_done(client, headers, settings):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Hi"})
        frames = receive_until_done(ws)
        ws.send_json({"question": "Again"})
        assert receive_until_done(ws)[-1]["type"] == "done"

    kinds = [f["type"] for f in frames]
    assert kinds == ["token", "token", "error", "done"]
    assert frames[2]["content"] == "the scripted engine failed on purpose"
    assert stored_messages(settings)[1] == ("assistant", "ok then ")


@pytest.mark.parametrize("engine", [ScriptedEngine(["word "] * 200, delay=0.01)])
def test_socket_closed_mid_reply_stores_the_partial_reply(
    client, headers, settings, engine
):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Go on"})
        ws.receive_json()
    # Leaving the block closed the socket; the server stops the engine and
    # stores what it had.
    for _ in range(100):
        if len(stored_messages(settings)) == 2:
            break
        client.portal.call(asyncio.sleep, 0.02)
    assert engine.closed == 1
    role, content = stored_messages(settings)[1]
    assert role == "assistant" and 0 < len(content) < len("word ") * 200


@pytest.mark.parametrize("engine", [ScriptedEngine(["word "] * 200, delay=0.01)])
def test_socket_closed_right_after_the_question_stops_the_engine(
    client, headers, settings, engine
):
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Go on"})
    for _ in range(100):
        if stored_messages(settings) and (engine.closed or not engine.calls):
            break
        client.portal.call(asyncio.sleep, 0.02)
    client.portal.call(asyncio.sleep, 0.3)
    assert engine.yielded < 200
    assert stored_messages(settings)[0] == ("user", "Go on")
