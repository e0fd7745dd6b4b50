"""Abuse limits: the RateLimit counter itself, then the login and signup throttles."""

from dataclasses import replace

from starlette.testclient import TestClient

from conftest import PASSWORD, AuthActions
from limits import SWEEP_EVERY, RateLimit
from privia import create_app


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limit_refuses_past_the_limit_until_the_window_moves():
    clock = Clock()
    limit = RateLimit(3, 60, clock)
    for _ in range(3):
        assert limit.retry_after("k") is None
        limit.add("k")

    assert limit.retry_after("k") == 60
    clock.now += 59.5
    assert limit.retry_after("k") == 1
    clock.now += 0.5
    assert limit.retry_after("k") is None
    assert limit.retry_after("other") is None


def test_rate_limit_reset_and_off():
    limit = RateLimit(1, 60)
    limit.add("k")
    assert limit.retry_after("k") is not None
    limit.reset("k")
    assert limit.retry_after("k") is None

    off = RateLimit(0, 60)
    for _ in range(100):
        off.add("k")
    assert off.retry_after("k") is None and len(off) == 0


def test_rate_limit_sweeps_quiet_keys():
    clock = Clock()
    limit = RateLimit(2, 60, clock)
    for n in range(5000):
        limit.add(f"key-{n}")
        clock.now += 0.1
    # Every SWEEP_EVERY adds, keys quiet for the whole window (60 s, 600 keys
    # here) are dropped; without it all 5000 would stay.
    assert len(limit) <= 600 + SWEEP_EVERY
    limit.sweep()
    assert len(limit) <= 601


def limited_client(settings, engine, **limits):
    return TestClient(create_app(replace(settings, **limits), engine))


def fail_login(client, email="ada@example.com", headers=None):
    body = {"email": email, "password": "wrong password"}
    return client.post("/api/auth/login", json=body, headers=headers)


def test_failed_logins_lock_the_account_with_retry_after(settings, engine):
    with limited_client(settings, engine, login_max_failures=3) as client:
        AuthActions(client).signup()
        for _ in range(3):
            assert fail_login(client).status_code == 400

        response = client.post(
            "/api/auth/login", json={"email": "ADA@example.com", "password": PASSWORD}
        )
        assert response.status_code == 429
        assert (
            1 <= int(response.headers["retry-after"]) <= settings.login_window_seconds
        )
        assert response.json() == {
            "detail": "Too many failed sign-ins; try again later"
        }
        # Another account from the same address is not locked by Ada's.
        AuthActions(client).signup(email="bob@example.com")
        assert AuthActions(client).login(email="bob@example.com")


def test_the_web_sign_in_counts_against_the_same_limit(settings, engine):
    with limited_client(settings, engine, login_max_failures=3) as client:
        AuthActions(client).signup()
        ours = {"Origin": "http://testserver"}
        wrong = {"email": "ada@example.com", "password": "wrong password"}
        for _ in range(2):
            response = client.post("/auth/sign-in", json=wrong, headers=ours)
            assert response.status_code == 400
        assert fail_login(client).status_code == 400

        right = {"email": "ada@example.com", "password": PASSWORD}
        response = client.post("/auth/sign-in", json=right, headers=ours)
        assert response.status_code == 429
        assert "retry-after" in response.headers
        assert "set-cookie" not in response.headers


def test_unknown_emails_are_throttled_like_known_ones(settings, engine):
    with limited_client(settings, engine, login_max_failures=2) as client:
        for _ in range(2):
            assert fail_login(client, "nobody@example.com").status_code == 400
        assert fail_login(client, "nobody@example.com").status_code == 429


def test_a_successful_login_resets_the_account_count(settings, engine):
    with limited_client(settings, engine, login_max_failures=3) as client:
        auth = AuthActions(client)
        auth.signup()
        for _ in range(2):
            fail_login(client)
        auth.login()
        for _ in range(2):
            assert fail_login(client).status_code == 400
        auth.login()


def test_failed_logins_lock_the_address(settings, engine):
    with limited_client(
        settings, engine, login_max_failures=0, login_max_failures_per_address=4
    ) as client:
        AuthActions(client).signup()
        for n in range(4):
            assert fail_login(client, f"user{n}@example.com").status_code == 400
        response = client.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert response.status_code == 429
        assert "retry-after" in response.headers


def test_the_address_comes_from_the_socket_not_a_forwarded_header(settings, engine):
    # The test client connects from "testclient"; a header cannot pose as another.
    with limited_client(
        settings, engine, login_max_failures=0, login_max_failures_per_address=2
    ) as client:
        for n in range(2):
            headers = {"X-Forwarded-For": f"10.0.0.{n}"}
            fail_login(client, f"u{n}@example.com", headers=headers)
        headers = {"X-Forwarded-For": "10.0.0.99"}
        assert fail_login(client, "u9@example.com", headers=headers).status_code == 429


def test_signups_are_throttled_per_address(settings, engine):
    with limited_client(settings, engine, signups_per_hour=2) as client:
        auth = AuthActions(client)
        auth.signup(email="a@example.com")
        auth.signup(email="b@example.com")
        body = {"email": "c@example.com", "password": PASSWORD}
        response = client.post("/api/auth/signup", json=body)
        assert response.status_code == 429
        assert 3500 <= int(response.headers["retry-after"]) <= 3600


def test_zero_turns_the_limits_off(settings, engine):
    with limited_client(
        settings,
        engine,
        login_max_failures=0,
        login_max_failures_per_address=0,
        signups_per_hour=0,
    ) as client:
        for n in range(30):
            assert fail_login(client).status_code == 400
            AuthActions(client).signup(email=f"user{n}@example.com")


def test_rate_limit_undo_forgets_the_latest_event():
    limit = RateLimit(2, 60)
    limit.add("k")
    limit.add("k")
    limit.undo("k")
    assert limit.retry_after("k") is None
    limit.undo("k")
    limit.undo("k")
    limit.undo("never seen")
    limit.add("k")
    assert limit.retry_after("k") is None


def test_successful_logins_do_not_use_up_the_address_limit(settings, engine):
    with limited_client(
        settings, engine, login_max_failures=0, login_max_failures_per_address=3
    ) as client:
        auth = AuthActions(client)
        auth.signup()
        for _ in range(10):
            auth.login()
        for _ in range(3):
            assert fail_login(client).status_code == 400
        assert fail_login(client).status_code == 429


def test_questions_are_limited_per_user_across_every_transport(settings, engine):
    import sqlite3

    with limited_client(settings, engine, questions_per_minute=3) as client:
        auth = AuthActions(client)
        ada, bob = auth.headers("ada@example.com"), auth.headers("bob@example.com")
        assert client.post("/api/query", json={"question": "1"}, headers=ada).is_success
        assert client.post(
            "/api/stream", json={"question": "2"}, headers=ada
        ).is_success
        with client.websocket_connect("/api/ws/chat", headers=ada) as ws:
            ws.send_text("3")
            while ws.receive_json()["type"] != "done":
                pass
            ws.send_text("4")
            refused_frame = ws.receive_json()

        refused = client.post("/api/query", json={"question": "5"}, headers=ada)
        other_user = client.post("/api/query", json={"question": "6"}, headers=bob)

    wait = refused_frame["retry_after"]
    assert 1 <= wait <= 60
    assert refused_frame == {
        "type": "error",
        "content": f"Too many questions; try again in {wait} seconds",
        "retry_after": wait,
    }
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["detail"].startswith("Too many questions; try again in")
    assert other_user.status_code == 200
    with sqlite3.connect(settings.database) as conn:
        questions = conn.execute(
            "SELECT content FROM messages WHERE role = 'user' ORDER BY timestamp"
        ).fetchall()
    assert [q for (q,) in questions] == ["1", "2", "3", "6"]
