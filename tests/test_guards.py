"""Safe defaults on every request: body size, security headers, CORS, the signing key."""

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from handlers.middleware import SECURITY_HEADERS
from privia import create_app, signing_key

ORIGIN = "http://localhost:3000"


@pytest.fixture
def small_client(settings, engine):
    """A client whose app takes bodies of at most 1000 bytes."""
    small = replace(settings, max_body_bytes=1000)
    with TestClient(create_app(small, engine)) as client:
        yield client


def test_a_declared_oversized_body_is_413_before_the_app_runs(small_client):
    body = b'{"email": "' + b"a" * 2000 + b'"}'
    response = small_client.post(
        "/api/auth/signup", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than 1000 bytes"}


def test_a_streamed_oversized_body_is_413(small_client, headers):
    def chunks():
        for _ in range(100):
            yield b" " * 100

    response = small_client.post("/api/query", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than 1000 bytes"}


def test_a_body_at_the_limit_is_read(small_client):
    start, end = b'{"email": "ada@example.com", "password": "', b'"}'
    body = start + b"p" * (1000 - len(start) - len(end)) + end
    assert len(body) == 1000
    response = small_client.post(
        "/api/auth/signup", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201


def test_an_oversized_form_login_is_413(small_client):
    response = small_client.post(
        "/api/auth/login", data={"username": "ada@example.com", "password": "p" * 2000}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/health"),
        ("GET", "/api/auth/me"),
        ("GET", "/api/nowhere"),
        ("POST", "/api/auth/signup"),
    ],
)
def test_every_response_carries_the_security_headers(client, method, path):
    response = client.request(method, path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_a_413_and_a_500_carry_the_security_headers_too(
    small_client, settings, engine, monkeypatch
):
    response = small_client.post("/api/auth/signup", content=b"x" * 2000)
    assert response.headers["x-frame-options"] == "DENY"

    import handlers.health

    def broken(conn):
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers.health, "check_database", broken)
    app = create_app(settings, engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/health")
    assert response.status_code == 500
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_auth_responses_are_not_cached(client):
    body = {"email": "ada@example.com", "password": "correct horse battery"}
    signup = client.post("/api/auth/signup", json=body)
    login = client.post("/api/auth/login", json=body)
    token = login.json()["access_token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    for response in (signup, login, me):
        assert response.is_success
        assert response.headers["cache-control"] == "no-store"


def test_cors_allows_the_configured_origin_with_credentials(client):
    response = client.get("/api/health", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"

    preflight = client.options(
        "/api/query",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost:3001"]
)
def test_cors_gives_other_origins_nothing(client, origin):
    response = client.get("/api/health", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers

    preflight = client.options(
        "/api/query",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def test_production_refuses_a_short_secret_and_says_why(settings, engine):
    short = replace(settings, env="production", secret_key="x" * 31)
    with pytest.raises(RuntimeError, match="at least 32"):
        signing_key(short)
    with pytest.raises(RuntimeError, match="PRIVIA_SECRET_KEY is 31 bytes"):
        with TestClient(create_app(short, engine)):
            pass


def test_production_accepts_a_long_secret_and_development_a_short_one(settings):
    assert signing_key(replace(settings, env="production", secret_key="k" * 32))
    assert signing_key(replace(settings, secret_key="short")) == "short"
