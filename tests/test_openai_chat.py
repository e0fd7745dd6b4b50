"""Privia's chat routes and health with the openai engine and the test model server."""

import json
import logging
import sqlite3
import time

import pytest
import requests

from engines.openai import OpenAIEngine
from live import LiveServer, free_port
from model_server import MODEL, USAGE, Script, chunk, completion
from privia import create_app
from settings import load_settings
from sse import parse_events

KEY = "sk-route-test-key-never-shown"


@pytest.fixture
def engine(model_server, request):
    """The openai engine on the test model server, or with param "absent" on none."""
    if getattr(request, "param", None) == "absent":
        return OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", "asked-model")
    return OpenAIEngine(
        model_server.base_url, "asked-model", api_key=KEY, system_prompt="Be brief."
    )


def stored_messages(settings):
    with sqlite3.connect(settings.database) as conn:
        return conn.execute(
            "SELECT role, content FROM messages ORDER BY timestamp, rowid"
        ).fetchall()


def token_of(headers):
    return headers["Authorization"].removeprefix("Bearer ")


# /api/query


def test_query_answers_with_the_servers_reply_and_metadata(client, headers, settings):
    response = client.post("/api/query", json={"question": "Hi"}, headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "Hello there"
    assert (body["mode"], body["model"], body["usage"]) == ("chat", MODEL, USAGE)
    assert stored_messages(settings) == [("user", "Hi"), ("assistant", "Hello there")]


def test_the_conversation_history_reaches_the_server(client, headers, model_server):
    first = client.post("/api/query", json={"question": "One?"}, headers=headers)
    body = {"question": "Two?", "conversation_id": first.json()["conversation_id"]}
    client.post("/api/query", json=body, headers=headers)

    last = model_server.app.completions()[-1]
    assert last.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "Two?"},
    ]


@pytest.mark.parametrize(
    "status, words",
    [
        (401, "refused the API key"),
        (404, "no model 'asked-model'"),
        (429, "rate limiting"),
        (500, "failed (500)"),
        (503, "failed (503)"),
    ],
)
def test_a_refusal_is_502_naming_the_cause(
    client, headers, settings, model_server, status, words
):
    body = json.dumps({"error": {"message": f"nope {KEY}"}}).encode()
    model_server.app.script = Script([body], status, "application/json")
    response = client.post("/api/query", json={"question": "Hi"}, headers=headers)

    assert response.status_code == 502
    assert words in response.json()["detail"]
    assert KEY not in response.text
    assert stored_messages(settings) == [("user", "Hi")]

    # The process carries on: the next question is answered.
    model_server.app.script = Script()
    response = client.post("/api/query", json={"question": "Again"}, headers=headers)
    assert response.json()["answer"] == "Hello there"


@pytest.mark.parametrize("engine", ["absent"], indirect=True)
def test_an_absent_server_is_502(settings, headers, client):
    response = client.post("/api/query", json={"question": "Hi"}, headers=headers)

    assert response.status_code == 502
    assert response.json()["detail"].startswith("Cannot connect to the model server")
    assert stored_messages(settings)[0] == ("user", "Hi")


# /api/stream


def stream(client, headers, question="Hi"):
    return client.post("/api/stream", json={"question": question}, headers=headers)


def test_stream_sends_each_delta_then_done_with_metadata(client, headers, model_server):
    model_server.app.script = Script([completion("Hel", "lo\nthere")])
    events = parse_events(stream(client, headers).text)

    assert events[:2] == [("message", "Hel"), ("message", "lo\nthere")]
    kind, data = events[-1]
    done = json.loads(data)
    assert kind == "done"
    assert (done["mode"], done["model"], done["usage"]) == ("chat", MODEL, USAGE)


def test_stream_dropped_upstream_sends_an_error_and_stores_the_part(
    client, headers, settings, model_server
):
    model_server.app.script = Script([chunk("half "), chunk("way")], then="drop")
    events = parse_events(stream(client, headers).text)

    assert events[:2] == [("message", "half "), ("message", "way")]
    kind, data = events[-1]
    assert kind == "error"
    assert "dropped the connection" in json.loads(data)["error"]
    assert stored_messages(settings) == [("user", "Hi"), ("assistant", "half way")]


def test_stream_malformed_upstream_sends_an_error(client, headers, model_server):
    model_server.app.script = Script([chunk("a"), b"data: {oops\n\n"])
    kind, data = parse_events(stream(client, headers).text)[-1]
    assert kind == "error"
    assert "malformed" in json.loads(data)["error"]


# /api/ws/chat


def test_socket_stop_ends_the_upstream_request_and_keeps_the_part(
    client, headers, settings, model_server
):
    model_server.app.script = Script([chunk("partial ")], then="stall")
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Hi"})
        assert ws.receive_json()["content"] == "partial "
        ws.send_json({"type": "stop"})
        done = ws.receive_json()

    assert (done["type"], done["stopped"], done["model"]) == ("done", True, MODEL)
    (request,) = model_server.app.completions()
    assert request.hung_up.wait(5), "the model server kept generating after the stop"
    assert stored_messages(settings) == [("user", "Hi"), ("assistant", "partial ")]


def test_socket_upstream_failure_sends_an_error_frame(client, headers, model_server):
    model_server.app.script = Script([b"{}"], 401, "application/json")
    with client.websocket_connect(f"/api/ws/chat?token={token_of(headers)}") as ws:
        ws.send_json({"question": "Hi"})
        error = ws.receive_json()
        done = ws.receive_json()

    assert error["type"] == "error"
    assert "refused the API key" in error["content"]
    assert done["type"] == "done"


# /api/health


def poll_health(client, until, seconds=5):
    """Ask /api/health until its model_server entry satisfies `until`."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/api/health")
        if until(response.json()["model_server"]) or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def test_health_reports_the_probe_and_asks_once_a_minute(client, model_server):
    first = client.get("/api/health").json()
    assert first["engine"] == "openai"
    assert first["model_server"] == {"status": "unchecked"}

    response = poll_health(client, lambda server: server["status"] != "unchecked")
    assert response.json()["model_server"]["status"] == "ok"
    for _ in range(5):
        client.get("/api/health")
    probes = [r for r in model_server.app.requests if r.path == "/v1/models"]
    assert len(probes) == 1


def test_a_stale_probe_is_repeated(client, model_server, engine, caplog):
    engine.health_ttl_seconds = 0
    poll_health(client, lambda server: server["status"] == "ok")
    model_server.app.models_status = 500

    with caplog.at_level(logging.INFO, logger="privia.engine"):
        response = poll_health(client, lambda server: server["status"] == "failing")
    assert response.json()["model_server"]["detail"] == "GET /models answered 500"
    assert "GET /models answered 500" in caplog.text


@pytest.mark.parametrize("engine", ["absent"], indirect=True)
def test_health_stays_ok_when_the_model_server_is_down(client):
    response = poll_health(client, lambda server: server["status"] != "unchecked")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model_server"]["status"] == "unreachable"
    assert body["model_server"]["detail"].startswith("Cannot connect")


# Settings


def test_the_settings_select_the_engine_and_the_log_names_it(
    monkeypatch, tmp_path, caplog
):
    environment = {
        "PRIVIA_ENGINE": "openai",
        "PRIVIA_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
        "PRIVIA_OPENAI_API_KEY": KEY,
        "PRIVIA_MODEL": "llama3.2",
        "PRIVIA_SYSTEM_PROMPT": "Be kind.",
        "PRIVIA_TEMPERATURE": "0.3",
        "PRIVIA_MAX_TOKENS": "256",
        "PRIVIA_OPENAI_CONNECT_TIMEOUT_SECONDS": "2",
        "PRIVIA_OPENAI_READ_TIMEOUT_SECONDS": "30",
        "PRIVIA_DATABASE": str(tmp_path / "privia.db"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(tmp_path / "no.env")
    with caplog.at_level(logging.INFO, logger="privia"):
        engine = create_app(settings).state.engine

    assert isinstance(engine, OpenAIEngine)
    body = engine.request_body("Q", [])
    assert (body["model"], body["temperature"]) == ("llama3.2", 0.3)
    assert body["max_tokens"] == 256
    assert body["messages"][0] == {"role": "system", "content": "Be kind."}
    assert (engine.timeout.connect, engine.timeout.read) == (2.0, 30.0)
    assert "model llama3.2 at http://127.0.0.1:11434/v1" in caplog.text
    assert KEY not in caplog.text and KEY not in repr(settings)


def test_unset_optional_settings_are_none(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVIA_TEMPERATURE", "")
    settings = load_settings(tmp_path / "no.env")
    assert (settings.temperature, settings.max_tokens) == (None, None)


def test_the_openai_engine_needs_a_base_url_and_a_model(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVIA_ENGINE", "openai")
    with pytest.raises(ValueError, match="PRIVIA_OPENAI_BASE_URL"):
        create_app(load_settings(tmp_path / "no.env"))


# A real Privia process, so a client really hangs up


def test_closing_a_stream_ends_the_upstream_request(tmp_path, model_server):
    model_server.app.script = Script([chunk("partial ")], then="stall")
    live = LiveServer(
        tmp_path,
        PRIVIA_ENGINE="openai",
        PRIVIA_OPENAI_BASE_URL=model_server.base_url,
        PRIVIA_OPENAI_API_KEY=KEY,
        PRIVIA_MODEL="asked-model",
    ).start()
    try:
        account = {"email": "live@example.com", "password": "live-password"}
        requests.post(f"{live.url}/api/auth/signup", json=account).raise_for_status()
        token = requests.post(f"{live.url}/api/auth/login", json=account).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url = f"{live.url}/api/stream"
        question = {"question": "Hi"}
        with requests.post(url, json=question, headers=headers, stream=True) as reply:
            assert next(reply.iter_lines()) == b"data: partial "

        (request,) = model_server.app.completions()
        assert request.hung_up.wait(5), "the model server kept on after the client left"
        assert "model asked-model at " + model_server.base_url in live.log()
    finally:
        live.stop()
    assert KEY not in live.log()
