"""Tests against a real server process on a real port."""

import json
import sqlite3
import time

import pytest
import requests

import smoke
from websockets.sync.client import connect
from live import LiveServer


@pytest.fixture
def live(tmp_path):
    server = LiveServer(tmp_path, PRIVIA_STUB_DELAY_MS="20").start()
    yield server
    server.stop()


def test_smoke_flow_passes(live, capsys):
    smoke.run(live.url)
    assert "smoke passed" in capsys.readouterr().out


def sign_in(url):
    body = {"email": "live@example.com", "password": "live-password"}
    requests.post(f"{url}/api/auth/signup", json=body).raise_for_status()
    token = requests.post(f"{url}/api/auth/login", json=body).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_closing_a_stream_stores_the_partial_reply(live):
    headers = sign_in(live.url)
    with requests.post(
        f"{live.url}/api/stream", json={"question": "Hi"}, headers=headers, stream=True
    ) as response:
        lines = response.iter_lines()
        received = [line for line, _ in zip(lines, range(4))]
    assert any(line.startswith(b"data: ") for line in received)

    db = live.env["PRIVIA_DATABASE"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT role, content FROM messages").fetchall()
        if len(rows) == 2:
            break
        time.sleep(0.05)
    assert [role for role, _ in rows] == ["user", "assistant"]
    assert 0 < len(rows[1][1]) < 200
    # The server logs the end just after it stores the reply, so allow it a moment.
    while "stream ended" not in live.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "stream ended" in live.log() and "disconnected" in live.log()


def test_access_log_never_shows_a_token(live):
    headers = sign_in(live.url)
    token = headers["Authorization"].removeprefix("Bearer ")
    ws_url = live.url.replace("http", "ws") + f"/api/ws/chat?token={token}"
    with connect(ws_url) as socket:
        socket.send(json.dumps({"question": "Hi"}))
        while json.loads(socket.recv())["type"] != "done":
            pass
    requests.get(f"{live.url}/api/health?token={token}")
    time.sleep(0.2)
    log = live.log()
    assert "token=[redacted]" in log
    assert token not in log


def test_websocket_frames_are_not_compressed(live):
    token = sign_in(live.url)["Authorization"].removeprefix("Bearer ")
    ws_url = live.url.replace("http", "ws") + f"/api/ws/chat?token={token}"
    # The client offers permessage-deflate by default; the server declines it.
    with connect(ws_url) as socket:
        assert "sec-websocket-extensions" not in socket.response.headers
