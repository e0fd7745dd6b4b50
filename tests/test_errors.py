"""Every error Privia can answer has the same shape: a JSON {"detail": "..."}."""

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from privia import create_app


def assert_error(response, status):
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (
        list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]
    )


def test_unknown_route_is_404(client):
    assert_error(client.get("/api/nothing-here"), 404)


@pytest.mark.parametrize(
    "path, allowed",
    [
        ("/api/conversations", {"GET", "HEAD", "POST"}),
        ("/api/conversations/some-id", {"GET", "HEAD", "PATCH", "DELETE"}),
    ],
)
def test_wrong_method_is_405_naming_every_allowed_one(client, path, allowed):
    response = client.put(path)
    assert_error(response, 405)
    assert set(response.headers["allow"].split(", ")) == allowed


def test_bad_token_is_401(client):
    assert_error(client.get("/api/auth/me", headers={"Authorization": "Bearer x"}), 401)


def test_disabled_oauth_is_403(client):
    assert_error(client.post("/api/auth/oauth", json={}), 403)


def test_bad_body_is_422(client):
    assert_error(client.post("/api/auth/signup", content=b"{"), 422)


def test_taken_email_is_400(client, auth):
    auth.signup()
    body = {"email": "ada@example.com", "password": "long enough"}
    assert_error(client.post("/api/auth/signup", json=body), 400)


def test_cooldown_is_429(settings, engine, auth):
    cooled = replace(settings, conversation_cooldown_seconds=60)
    with TestClient(create_app(cooled, engine)) as client:
        auth.client = client
        headers = auth.headers()
        conversation = client.post("/api/conversations", headers=headers).json()
        client.post(
            "/api/query",
            json={"question": "hi", "conversation_id": conversation["id"]},
            headers=headers,
        )
        assert_error(client.post("/api/conversations", headers=headers), 429)


def test_unexpected_failure_is_500(settings, engine, auth, monkeypatch):
    import handlers.conversations

    def broken(conn, user_id):
        raise RuntimeError("a bug")

    monkeypatch.setattr(handlers.conversations, "fetch_conversation_list", broken)
    app = create_app(settings, engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        auth.client = client
        response = client.get("/api/conversations", headers=auth.headers())
    assert_error(response, 500)
    assert "a bug" not in response.text


def test_server_error_carries_the_cors_origin(settings, engine, auth, monkeypatch):
    import handlers.conversations

    def broken(conn, user_id):
        raise RuntimeError("a bug")

    monkeypatch.setattr(handlers.conversations, "fetch_conversation_list", broken)
    origin = settings.allowed_origins[0]
    with TestClient(
        create_app(settings, engine), raise_server_exceptions=False
    ) as client:
        auth.client = client
        headers = auth.headers() | {"Origin": origin}
        response = client.get("/api/conversations", headers=headers)
    assert_error(response, 500)
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["x-content-type-options"] == "nosniff"


def test_retry_after_is_exposed_to_the_browser(client, settings):
    origin = settings.allowed_origins[0]
    response = client.get("/api/health", headers={"Origin": origin})
    assert "Retry-After" in response.headers["access-control-expose-headers"]


def test_a_database_locked_past_the_timeout_is_503(settings, engine, auth, monkeypatch):
    import sqlite3

    import handlers.conversations

    def locked(conn, user_id):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(handlers.conversations, "fetch_conversation_list", locked)
    with TestClient(create_app(settings, engine)) as client:
        auth.client = client
        response = client.get("/api/conversations", headers=auth.headers())
    assert_error(response, 503)
    assert response.headers["retry-after"] == "1"


def test_a_deleted_database_makes_health_503(client, settings):
    assert client.get("/api/health").status_code == 200
    settings.database.unlink()
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert not settings.database.exists()


def test_unreadable_database_makes_health_503(client, settings):
    settings.database.unlink()
    settings.database.mkdir()
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


@pytest.mark.parametrize("path", ["/api/health", "/api/health/"])
def test_health(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert {"version", "env", "uptime", "timestamp"} <= set(body)
