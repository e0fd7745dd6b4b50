"""Input that looks like SQL (quotes, --, ;, NUL) is stored and returned literally."""

import json
import sqlite3
from dataclasses import replace
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from privia import create_app
from sse import parse_events

NASTY = "Robert'); DROP TABLE users;-- \" \x00 ; /* */ OR 1=1 --"
NASTY_EMAIL = "o'hara\";--\x00;drop@example.com"
TABLES = {"users", "conversations", "messages"}


def tables(settings):
    with sqlite3.connect(settings.database) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


@pytest.fixture
def nasty_headers(client):
    body = {"email": NASTY_EMAIL, "password": NASTY, "full_name": NASTY}
    signup = client.post("/api/auth/signup", json=body)
    assert signup.status_code == 201
    assert signup.json()["email"] == NASTY_EMAIL
    assert signup.json()["full_name"] == NASTY

    login = client.post(
        "/api/auth/login", json={"email": NASTY_EMAIL, "password": NASTY}
    )
    assert login.status_code == 200
    form = {"username": NASTY_EMAIL, "password": NASTY}
    assert client.post("/api/auth/login", data=form).status_code == 200
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_account_fields_are_stored_literally(client, nasty_headers, settings):
    me = client.get("/api/auth/me", headers=nasty_headers).json()
    assert (me["email"], me["full_name"]) == (NASTY_EMAIL, NASTY)
    with sqlite3.connect(settings.database) as conn:
        row = conn.execute("SELECT email, full_name FROM users").fetchone()
    assert row == (NASTY_EMAIL, NASTY)
    assert tables(settings) >= TABLES


def test_a_wrong_nasty_password_is_just_wrong(client, nasty_headers):
    body = {"email": NASTY_EMAIL, "password": "' OR '1'='1' --"}
    assert client.post("/api/auth/login", json=body).status_code == 400


def test_titles_and_questions_are_stored_literally(client, nasty_headers, settings):
    created = client.post(
        "/api/conversations", json={"title": NASTY}, headers=nasty_headers
    )
    assert created.status_code == 201 and created.json()["title"] == NASTY
    conversation_id = created.json()["id"]

    renamed = client.patch(
        f"/api/conversations/{conversation_id}",
        json={"title": NASTY + "!"},
        headers=nasty_headers,
    )
    assert renamed.json()["title"] == NASTY + "!"

    body = {"question": NASTY, "conversation_id": conversation_id}
    assert (
        client.post("/api/query", json=body, headers=nasty_headers).status_code == 200
    )
    stream = client.post("/api/stream", json=body, headers=nasty_headers)
    assert [kind for kind, _ in parse_events(stream.text)][-1] == "done"
    token = nasty_headers["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"/api/ws/chat?token={token}") as socket:
        socket.send_text(json.dumps(body))
        while socket.receive_json()["type"] != "done":
            pass

    detail = client.get(f"/api/conversations/{conversation_id}", headers=nasty_headers)
    questions = [m["content"] for m in detail.json()["messages"] if m["role"] == "user"]
    assert questions == [NASTY] * 3
    assert detail.json()["title"] == NASTY + "!"
    listed = client.get("/api/conversations", headers=nasty_headers).json()
    assert [c["title"] for c in listed] == [NASTY + "!"]
    assert tables(settings) >= TABLES


@pytest.mark.parametrize(
    "conversation_id", ["' OR '1'='1", "x'; DELETE FROM messages; --", "a\x00b", "%00"]
)
def test_nasty_conversation_ids_are_just_unknown(
    client, nasty_headers, conversation_id
):
    body = {"question": "hi", "conversation_id": conversation_id}
    response = client.post("/api/query", json=body, headers=nasty_headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "Conversation not found"}

    path = f"/api/conversations/{quote(conversation_id, safe='')}"
    response = client.get(path, headers=nasty_headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "Conversation not found"}


def test_oauth_fields_are_stored_literally(settings, engine):
    oauth_settings = replace(settings, oauth_secret="shared")
    with TestClient(create_app(oauth_settings, engine)) as client:
        body = {
            "provider": "github",
            "provider_account_id": NASTY,
            "email": NASTY_EMAIL,
            "full_name": NASTY,
            "avatar_url": NASTY,
        }
        response = client.post(
            "/api/auth/oauth", json=body, headers={"X-Privia-OAuth-Secret": "shared"}
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["avatar_url"] == NASTY
    with sqlite3.connect(settings.database) as conn:
        row = conn.execute(
            "SELECT provider_account_id, email, full_name, avatar_url FROM users"
        ).fetchone()
    assert row == (NASTY, NASTY_EMAIL, NASTY, NASTY)
