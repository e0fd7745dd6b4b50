import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from privia import create_app


def ask(client, headers, question, conversation_id=None):
    body = {"question": question}
    if conversation_id:
        body["conversation_id"] = conversation_id
    response = client.post("/api/query", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_returns_the_same_empty_conversation(client, headers):
    first = client.post("/api/conversations", headers=headers)
    second = client.post("/api/conversations", json={}, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.json()["title"] == "New conversation"
    assert first.json()["status"] == "empty"


def test_create_with_a_title(client, headers):
    response = client.post(
        "/api/conversations", json={"title": " Plans "}, headers=headers
    )
    assert response.status_code == 201
    assert response.json()["title"] == "Plans"


def test_create_after_a_question_makes_a_new_one(client, headers):
    first = client.post("/api/conversations", headers=headers).json()
    ask(client, headers, "hello", first["id"])
    second = client.post("/api/conversations", headers=headers).json()
    assert second["id"] != first["id"]


def test_create_within_the_cooldown_is_429(settings, engine, auth):
    cooled = replace(settings, conversation_cooldown_seconds=3)
    with TestClient(create_app(cooled, engine)) as client:
        auth.client = client
        headers = auth.headers()
        first = client.post("/api/conversations", headers=headers).json()
        ask(client, headers, "hello", first["id"])

        response = client.post("/api/conversations", headers=headers)

    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 3


def test_concurrent_creates_yield_one_conversation(settings, engine, auth):
    cooled = replace(settings, conversation_cooldown_seconds=3)
    with TestClient(create_app(cooled, engine)) as client:
        auth.client = client
        headers = auth.headers()
        with ThreadPoolExecutor(20) as pool:
            responses = list(
                pool.map(
                    lambda _: client.post("/api/conversations", headers=headers),
                    range(20),
                )
            )

    assert {r.status_code for r in responses} <= {201, 429}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    with sqlite3.connect(settings.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1


def test_list_is_newest_first_with_counts(client, headers):
    older = ask(client, headers, "first question")
    newer = ask(client, headers, "second question")
    ask(client, headers, "follow-up", older["conversation_id"])

    response = client.get("/api/conversations", headers=headers)

    assert response.status_code == 200
    listed = response.json()
    assert [c["id"] for c in listed] == [
        older["conversation_id"],
        newer["conversation_id"],
    ]
    assert [c["message_count"] for c in listed] == [4, 2]
    assert set(listed[0]) == {
        "id",
        "title",
        "status",
        "created_at",
        "updated_at",
        "message_count",
    }


def test_list_shows_only_the_callers(client, auth):
    ada = auth.headers("ada@example.com")
    bob = auth.headers("bob@example.com")
    ask(client, ada, "mine")
    assert client.get("/api/conversations", headers=bob).json() == []


def test_get_returns_messages_oldest_first(client, headers, engine):
    answer = ask(client, headers, "What is Privia?")
    conversation_id = answer["conversation_id"]

    response = client.get(f"/api/conversations/{conversation_id}", headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "What is Privia?"
    assert body["status"] == "active"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "What is Privia?"),
        ("assistant", "".join(engine.chunks)),
    ]
    assert body["messages"][1]["id"] == answer["message_id"]


def test_rename(client, headers):
    conversation = client.post("/api/conversations", headers=headers).json()
    url = f"/api/conversations/{conversation['id']}"

    response = client.patch(url, json={"title": "Renamed"}, headers=headers)

    assert response.status_code == 200
    assert response.json()["title"] == "Renamed"
    assert client.get(url, headers=headers).json()["title"] == "Renamed"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, None, 5])
def test_rename_rejects_bad_titles(client, headers, title):
    conversation = client.post("/api/conversations", headers=headers).json()
    response = client.patch(
        f"/api/conversations/{conversation['id']}",
        json={"title": title},
        headers=headers,
    )
    assert response.status_code == 422


def test_delete_removes_the_messages_too(client, headers, settings):
    conversation_id = ask(client, headers, "hello")["conversation_id"]
    url = f"/api/conversations/{conversation_id}"

    response = client.delete(url, headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(url, headers=headers).status_code == 404
    with sqlite3.connect(settings.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("GET", "", None),
        ("PATCH", "", {"title": "Mine now"}),
        ("DELETE", "", None),
    ],
)
def test_another_users_conversation_is_404(
    client, auth, settings, method, suffix, body
):
    ada = auth.headers("ada@example.com")
    bob = auth.headers("bob@example.com")
    conversation_id = ask(client, ada, "private")["conversation_id"]

    response = client.request(
        method, f"/api/conversations/{conversation_id}{suffix}", json=body, headers=bob
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Conversation not found"}
    own = client.get(f"/api/conversations/{conversation_id}", headers=ada).json()
    assert own["title"] == "private" and len(own["messages"]) == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_conversations_need_a_token(client, method):
    assert client.request(method, "/api/conversations").status_code == 401
