"""Tests against a real server process on a real port."""

import json
import sqlite3
import time

import pytest
import requests

import smoke
from websockets.exceptions import ConnectionClosed
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
    requests.get(f"{live.url}/api/health?a=1&%74oken={token}")
    time.sleep(0.2)
    log = live.log()
    assert "token=[redacted]" in log
    assert token not in log


def test_an_oversized_socket_frame_closes_the_socket(tmp_path):
    server = LiveServer(tmp_path, PRIVIA_MAX_BODY_BYTES="2000").start()
    try:
        token = sign_in(server.url)["Authorization"].removeprefix("Bearer ")
        ws_url = server.url.replace("http", "ws") + f"/api/ws/chat?token={token}"
        with connect(ws_url) as socket:
            socket.send(json.dumps({"question": "small enough"}))
            while json.loads(socket.recv())["type"] != "done":
                pass
            socket.send(json.dumps({"question": "x" * 3000}))
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv()
        assert closed.value.rcvd.code == 1009
    finally:
        server.stop()


def test_an_oversized_chunked_body_is_413_on_a_real_socket(live):
    headers = sign_in(live.url) | {"Content-Type": "application/json"}

    def chunks():
        yield b'{"question": "'
        for _ in range(2000):
            yield b"x" * 1024

    response = requests.post(f"{live.url}/api/query", data=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than 1048576 bytes"}


def test_no_secret_reaches_the_log(tmp_path):
    secret_key = "a-signing-key-that-must-never-be-logged-0123456789"
    oauth_secret = "an-oauth-secret-that-must-never-be-logged"
    password = "a-password-that-must-never-be-logged"
    question = "a question whose text must never be logged"
    server = LiveServer(
        tmp_path, PRIVIA_SECRET_KEY=secret_key, PRIVIA_OAUTH_SECRET=oauth_secret
    ).start()
    try:
        url = server.url
        body = {"email": "quiet@example.com", "password": password}
        requests.post(f"{url}/api/auth/signup", json=body).raise_for_status()
        requests.post(f"{url}/api/auth/login", json=body | {"password": password + "x"})
        form = {"username": body["email"], "password": password}
        requests.post(f"{url}/api/auth/login", data=form).raise_for_status()
        token = requests.post(f"{url}/api/auth/login", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        requests.get(f"{url}/api/auth/me", headers=headers).raise_for_status()
        requests.post(f"{url}/api/query", json={"question": question}, headers=headers)
        requests.post(f"{url}/api/stream", json={"question": question}, headers=headers)
        requests.get(
            f"{url}/api/auth/me", headers={"Authorization": f"Bearer {token}x"}
        )
        requests.post(
            f"{url}/api/auth/oauth",
            headers={"X-Privia-OAuth-Secret": oauth_secret},
            json={"provider": "github", "provider_account_id": 1, "email": "o@x.org"},
        ).raise_for_status()
        ws_url = url.replace("http", "ws") + f"/api/ws/chat?token={token}"
        with connect(ws_url) as socket:
            socket.send(json.dumps({"question": question}))
            while json.loads(socket.recv())["type"] != "done":
                pass
    finally:
        server.stop()

    log = server.log()
    assert "signed up" in log and "stream ended" in log
    for secret in (secret_key, oauth_secret, password, question, token):
        assert secret not in log


@pytest.mark.parametrize(
    "trusted, separate", [("127.0.0.1", True), ("192.0.2.1", False)]
)
def test_forwarded_addresses_count_only_from_a_trusted_proxy(
    tmp_path, trusted, separate
):
    server = LiveServer(
        tmp_path,
        FORWARDED_ALLOW_IPS=trusted,
        PRIVIA_LOGIN_MAX_FAILURES="0",
        PRIVIA_LOGIN_MAX_FAILURES_PER_ADDRESS="2",
    ).start()
    try:

        def fail_from(address):
            body = {"email": "nobody@example.com", "password": "wrong password"}
            headers = {"X-Forwarded-For": address}
            url = f"{server.url}/api/auth/login"
            return requests.post(url, json=body, headers=headers).status_code

        assert [fail_from("198.51.100.1") for _ in range(3)] == [400, 400, 429]
        # Through a trusted proxy, another client has a count of its own;
        # otherwise the header is ignored and the socket's address is locked.
        assert fail_from("198.51.100.2") == (400 if separate else 429)
    finally:
        server.stop()


def test_websocket_frames_are_not_compressed(live):
    token = sign_in(live.url)["Authorization"].removeprefix("Bearer ")
    ws_url = live.url.replace("http", "ws") + f"/api/ws/chat?token={token}"
    # The client offers permessage-deflate by default; the server declines it.
    with connect(ws_url) as socket:
        assert "sec-websocket-extensions" not in socket.response.headers
