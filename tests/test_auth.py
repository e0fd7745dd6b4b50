import asyncio
import os
import sqlite3
import threading
import time

import jwt
import pytest

import passwords
from conftest import PASSWORD
from passwords import PasswordHasher

OAUTH_SECRET = "shared-with-the-frontend"


def test_signup_creates_member(client, settings):
    body = {"email": "  Ada@Example.COM ", "password": PASSWORD, "full_name": "Ada"}
    response = client.post("/api/auth/signup", json=body)

    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "email", "full_name", "role"}
    assert user["email"] == "ada@example.com"
    assert user["role"] == "member"
    with sqlite3.connect(settings.database) as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$pbkdf2-sha256$") and PASSWORD not in stored


def test_signup_twice_is_refused_whatever_the_case(client, auth):
    auth.signup(email="ada@example.com")
    body = {"email": "ADA@example.com", "password": PASSWORD}
    response = client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": "Email already registered"}


@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD},
        {"email": "ada@example.com"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "ada@example", "password": PASSWORD},
        {"email": "ada@example.com", "password": "short"},
        {"email": 42, "password": PASSWORD},
        {"email": "ada@example.com", "password": ["x"] * 8},
        {"email": "ada@example.com", "password": PASSWORD, "full_name": 7},
        {"email": "ada@example.com", "password": "x" * 2000},
    ],
)
def test_signup_rejects_bad_input(client, body):
    response = client.post("/api/auth/signup", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe", b'{"a":' + b"[" * 100_000],
)
def test_signup_rejects_bodies_that_are_not_objects(client, raw):
    response = client.post(
        "/api/auth/signup", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "path, raw",
    [
        (
            "/api/auth/signup",
            b'{"email": "x@example.com", "password": "\\ud800aaaaaaaa"}',
        ),
        (
            "/api/auth/login",
            b'{"email": "\\udfff@example.com", "password": "aaaaaaaaaa"}',
        ),
    ],
)
def test_lone_surrogates_are_422(client, path, raw):
    response = client.post(path, content=raw)
    assert response.status_code == 422
    assert "Unicode" in response.json()["detail"]


def test_concurrent_signups_with_one_email_make_one_account(client, settings):
    from concurrent.futures import ThreadPoolExecutor

    body = {"email": "race@example.com", "password": PASSWORD}
    with ThreadPoolExecutor(20) as pool:
        responses = list(
            pool.map(lambda _: client.post("/api/auth/signup", json=body), range(20))
        )

    assert sorted(r.status_code for r in responses) == [201] + [400] * 19
    with sqlite3.connect(settings.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1


def test_login_form_content_type_is_case_insensitive(client, auth):
    auth.signup()
    response = client.post(
        "/api/auth/login",
        content=f"username=ada%40example.com&password={PASSWORD.replace(' ', '+')}",
        headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
    )
    assert response.status_code == 200


def test_login_with_multipart_form(client, auth):
    auth.signup()
    response = client.post(
        "/api/auth/login",
        files={"username": (None, "ada@example.com"), "password": (None, PASSWORD)},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["token_type"] == "bearer"


def test_login_with_urlencoded_form(client, auth):
    user = auth.signup()
    response = client.post(
        "/api/auth/login", data={"username": "ADA@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["user"] == user
    assert response.headers["cache-control"] == "no-store"


def test_login_token_carries_the_claims(client, auth, settings):
    user = auth.signup()
    token = auth.login()
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["email"] == "ada@example.com"
    assert claims["exp"] - claims["iat"] == settings.token_ttl_seconds


@pytest.mark.parametrize(
    "email, password",
    [("ada@example.com", "wrong password"), ("nobody@example.com", PASSWORD)],
)
def test_login_failure_says_the_same_for_email_and_password(
    client, auth, email, password
):
    auth.signup()
    response = client.post(
        "/api/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid email or password"}


def test_login_without_fields_is_422(client):
    response = client.post("/api/auth/login", data={"username": "ada@example.com"})
    assert response.status_code == 422


def test_login_upgrades_a_weaker_hash(client, auth, settings):
    auth.signup()
    weak = PasswordHasher(rounds=500).hash(PASSWORD)
    with sqlite3.connect(settings.database) as conn:
        conn.execute("UPDATE users SET password_hash = ?", (weak,))

    auth.login()

    with sqlite3.connect(settings.database) as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith(f"$pbkdf2-sha256${settings.password_rounds}$")
    auth.login()


def test_me_returns_the_profile(client, headers):
    response = client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200
    assert response.json() | {"id": None} == {
        "id": None,
        "email": "ada@example.com",
        "full_name": "Ada",
        "role": "member",
        "provider": None,
        "avatar_url": None,
    }


def test_me_accepts_the_auth_token_cookie(client, auth):
    auth.signup()
    client.cookies.set("auth-token", auth.login())
    assert client.get("/api/auth/me").status_code == 200


def forged_tokens(settings, user_id):
    now = int(time.time())
    good = {"sub": user_id, "iat": now, "exp": now + 60}
    key = settings.secret_key
    return {
        "other key": jwt.encode(good, "another-key-of-sufficient-length!!", "HS256"),
        "expired": jwt.encode(good | {"exp": now - 10}, key, "HS256"),
        "no exp": jwt.encode({"sub": user_id}, key, "HS256"),
        "no sub": jwt.encode({"exp": now + 60}, key, "HS256"),
        "alg none": jwt.encode(good, None, "none"),
        "HS512": jwt.encode(
            good, key + "-padding-to-64-bytes-for-hs512-xxxxxxx", "HS512"
        ),
        "garbage": "not.a.token",
        "deleted user": jwt.encode(good | {"sub": "no-such-user"}, key, "HS256"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "other key",
        "expired",
        "no exp",
        "no sub",
        "alg none",
        "HS512",
        "garbage",
        "deleted user",
    ],
)
def test_me_rejects_bad_tokens(client, auth, settings, kind):
    user = auth.signup()
    token = forged_tokens(settings, user["id"])[kind]
    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


def test_me_without_token_is_401(client):
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def oauth_settings(settings):
    from dataclasses import replace

    return replace(settings, oauth_secret=OAUTH_SECRET)


@pytest.fixture
def oauth_client(oauth_settings, engine):
    from starlette.testclient import TestClient

    from privia import create_app

    with TestClient(create_app(oauth_settings, engine)) as client:
        yield client


def oauth(client, secret=OAUTH_SECRET, **fields):
    body = {
        "provider": "github",
        "provider_account_id": 1234,
        "email": "Grace@Example.com",
        "full_name": "Grace",
        "avatar_url": "https://avatars.example.com/grace.png",
    } | fields
    return client.post(
        "/api/auth/oauth", json=body, headers={"X-Privia-OAuth-Secret": secret}
    )


def test_oauth_is_off_until_configured(client):
    response = oauth(client)
    assert response.status_code == 403
    assert "PRIVIA_OAUTH_SECRET" in response.json()["detail"]


def test_oauth_needs_the_shared_secret(oauth_client):
    assert oauth(oauth_client, secret="guess").status_code == 403


def test_oauth_creates_then_finds_the_user(oauth_client, oauth_settings):
    first = oauth(oauth_client)
    assert first.status_code == 200
    user = first.json()["user"]
    assert user["email"] == "grace@example.com"

    second = oauth(oauth_client, email="changed@example.com")
    assert second.json()["user"]["id"] == user["id"]

    token = second.json()["access_token"]
    me = oauth_client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["provider"] == "github"
    assert me.json()["avatar_url"] == "https://avatars.example.com/grace.png"
    with sqlite3.connect(oauth_settings.database) as conn:
        assert conn.execute("SELECT password_hash FROM users").fetchone()[0] == ""


def test_oauth_links_an_existing_email_and_keeps_password_login(oauth_client):
    body = {"email": "grace@example.com", "password": PASSWORD}
    created = oauth_client.post("/api/auth/signup", json=body).json()

    linked = oauth(oauth_client, provider="google", provider_account_id="g-1")
    assert linked.json()["user"]["id"] == created["id"]
    assert oauth_client.post("/api/auth/login", json=body).status_code == 200


def test_oauth_account_cannot_log_in_with_a_password(oauth_client):
    oauth(oauth_client)
    body = {"email": "grace@example.com", "password": ""}
    assert oauth_client.post("/api/auth/login", json=body).status_code == 400
    body["password"] = "anything-at-all"
    assert oauth_client.post("/api/auth/login", json=body).status_code == 400


@pytest.mark.parametrize(
    "fields",
    [
        {"provider": "myspace"},
        {"provider_account_id": None},
        {"email": "nope"},
        {"avatar_url": 5},
    ],
)
def test_oauth_rejects_bad_input(oauth_client, fields):
    assert oauth(oauth_client, **fields).status_code == 422


def test_queued_logins_leave_the_thread_pool_to_other_requests(settings, engine):
    """Sixty logins wait for two hashing slots; a database read is not stuck behind them."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace
    from threading import Event

    from starlette.testclient import TestClient

    from conftest import AuthActions
    from privia import create_app

    unlimited = replace(
        settings, login_max_failures=0, login_max_failures_per_address=0
    )
    app = create_app(unlimited, engine)
    release, hashing = Event(), []

    def slow_verify(password, stored_hash):
        hashing.append(password)
        release.wait(10)
        return False, None

    with TestClient(app) as client, ThreadPoolExecutor(61) as pool:
        headers = AuthActions(client).headers()
        app.state.hasher.verify = slow_verify
        body = {"email": "ada@example.com", "password": "wrong password"}
        logins = [
            pool.submit(client.post, "/api/auth/login", json=body) for _ in range(60)
        ]
        while len(hashing) < 2:
            time.sleep(0.01)
        time.sleep(0.3)  # let the other 58 logins arrive and queue

        listed = pool.submit(client.get, "/api/conversations", headers=headers)
        status = listed.result(timeout=5).status_code
        hashing_while_listed = len(hashing)
        release.set()
        assert {f.result().status_code for f in logins} == {400}

    assert status == 200
    assert hashing_while_listed == 2


def test_cookie_alone_cannot_change_state_without_our_origin(client, auth):
    auth.signup()
    client.cookies.set("auth-token", auth.login())

    response = client.post("/api/conversations", json={})
    assert response.status_code == 403
    assert response.json() == {"detail": "This request must come from a Privia page"}
    other = {"Origin": "https://evil.example"}
    assert client.post("/api/conversations", json={}, headers=other).status_code == 403


def test_cookie_changes_state_from_our_origin_or_an_allowed_one(client, auth):
    auth.signup()
    client.cookies.set("auth-token", auth.login())

    ours = {"Origin": "http://testserver"}
    assert client.post("/api/conversations", json={}, headers=ours).status_code == 201
    allowed = {"Origin": "http://localhost:3000"}
    assert client.get("/api/conversations", headers=allowed).status_code == 200
    response = client.post("/api/conversations", json={}, headers=allowed)
    assert response.status_code == 201


def test_reading_with_the_cookie_needs_no_origin(client, auth):
    auth.signup()
    client.cookies.set("auth-token", auth.login())
    assert client.get("/api/conversations").status_code == 200


def test_bearer_token_needs_no_origin_even_with_a_cookie(client, auth, headers):
    client.cookies.set("auth-token", "stale")
    response = client.post("/api/conversations", json={}, headers=headers)
    assert response.status_code == 201


def test_cookie_origin_check_compares_the_host_not_the_scheme(client, auth):
    # Behind a proxy that ends TLS the page is https while Privia sees http.
    auth.signup()
    client.cookies.set("auth-token", auth.login())
    https = {"Origin": "https://testserver"}
    assert client.post("/api/conversations", json={}, headers=https).status_code == 201
    lookalike = {"Origin": "http://testserver.evil.example"}
    response = client.post("/api/conversations", json={}, headers=lookalike)
    assert response.status_code == 403


def test_passwords_are_hashed_at_the_lowest_priority():
    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    on_thread = asyncio.run(passwords.on_hashing_thread(niceness))
    assert on_thread == passwords.HASHING_NICENESS
    assert niceness() < passwords.HASHING_NICENESS
