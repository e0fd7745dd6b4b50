"""Smoke-test a running Privia: python tests/smoke.py http://127.0.0.1:8000

Walks the main path a client takes, with `requests`, and stops at the first
step that does not answer as it should. Each run signs up a new user, so it can
be run again and again against the same server.
"""

import sys
import uuid

import requests


def check(response, status, step):
    if response.status_code != status:
        raise SystemExit(
            f"FAIL {step}: expected {status}, got {response.status_code}: {response.text}"
        )
    print(f"ok   {step}")
    return response.json() if response.content else None


def run(base_url):
    api = base_url.rstrip("/") + "/api"
    email = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
    password = "smoke-test-password"
    http = requests.Session()

    check(http.get(f"{api}/health"), 200, "health")
    check(
        http.post(f"{api}/auth/signup", json={"email": email, "password": password}),
        201,
        "signup",
    )
    form = check(
        http.post(f"{api}/auth/login", data={"username": email, "password": password}),
        200,
        "login with a form",
    )
    login = check(
        http.post(f"{api}/auth/login", json={"email": email, "password": password}),
        200,
        "login with JSON",
    )
    assert form["user"] == login["user"]
    http.headers["Authorization"] = f"Bearer {login['access_token']}"

    me = check(http.get(f"{api}/auth/me"), 200, "me")
    assert me["email"] == email, me

    first = check(http.post(f"{api}/conversations"), 201, "create conversation")
    again = check(http.post(f"{api}/conversations"), 201, "create conversation again")
    assert first["id"] == again["id"], (first, again)

    question = "What does a smoke test prove about a chat backend?"
    for text in (question, "And a second question"):
        body = {"question": text, "conversation_id": first["id"]}
        answer = check(http.post(f"{api}/query", json=body), 200, "query")
        assert answer["conversation_id"] == first["id"] and answer["answer"], answer

    listed = check(http.get(f"{api}/conversations"), 200, "list conversations")
    mine = next(c for c in listed if c["id"] == first["id"])
    assert mine["title"] == question[:40] + "...", mine
    assert mine["status"] == "active" and mine["message_count"] == 4, mine

    url = f"{api}/conversations/{first['id']}"
    detail = check(http.get(url), 200, "get conversation")
    roles = [m["role"] for m in detail["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"], roles
    assert detail["messages"][0]["content"] == question

    with http.post(f"{api}/stream", json={"question": "Stream it"}, stream=True) as sse:
        assert sse.status_code == 200, sse.text
        text = sse.content.decode()
    assert "event: done" in text, text
    print("ok   stream")

    renamed = check(http.patch(url, json={"title": "Smoke"}), 200, "rename")
    assert renamed["title"] == "Smoke"
    check(http.delete(url), 204, "delete")
    check(http.get(url), 404, "deleted conversation is gone")
    print("smoke passed")


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
