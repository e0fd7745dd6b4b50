"""Proof under load and faults, against real server processes.

Writers hammer /api/query from threads while a reader lists conversations;
then a server is killed with SIGKILL in the middle of a burst and restarted
on the same file. Bounded in count, not in time: nothing here asserts speed.
The figures measured are printed (pytest -s shows them).
"""

import json
import sqlite3
import threading
import time

import requests

from live import LiveServer
from sse import parse_events

WRITERS = 8
QUESTIONS_EACH = 200


def sign_in(url, email):
    body = {"email": email, "password": "load-password"}
    requests.post(f"{url}/api/auth/signup", json=body).raise_for_status()
    login = requests.post(f"{url}/api/auth/login", json=body)
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def run_threads(targets):
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_parallel_writers_and_a_reader_lose_nothing(tmp_path):
    # Each user asks far faster than a person would; the per-user limit is off.
    server = LiveServer(tmp_path, PRIVIA_QUESTIONS_PER_MINUTE="0").start()
    try:
        users = [sign_in(server.url, f"writer{n}@example.com") for n in range(WRITERS)]
        failures, acknowledged, reader_waits = [], {}, []
        writing = threading.Event()
        writing.set()

        def write(n):
            session = requests.Session()
            conversation_id = None
            acknowledged[n] = []
            for q in range(QUESTIONS_EACH):
                question = f"writer {n} question {q}"
                body = {"question": question, "conversation_id": conversation_id}
                response = session.post(
                    f"{server.url}/api/query", json=body, headers=users[n]
                )
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))
                    continue
                answer = response.json()
                conversation_id = answer["conversation_id"]
                acknowledged[n].append((question, answer["message_id"]))

        def read():
            session = requests.Session()
            while writing.is_set():
                started = time.monotonic()
                response = session.get(
                    f"{server.url}/api/conversations", headers=users[0]
                )
                reader_waits.append(time.monotonic() - started)
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))

        reader = threading.Thread(target=read)
        reader.start()
        started = time.monotonic()
        run_threads([lambda n=n: write(n) for n in range(WRITERS)])
        elapsed = time.monotonic() - started
        writing.clear()
        reader.join()
    finally:
        server.stop()

    # A read that waited out the busy timeout would fail with "database is
    # locked" and answer 500, so no failure means no reader waited that long.
    assert failures == []
    assert "database is locked" not in server.log()
    assert "Traceback" not in server.log()

    with sqlite3.connect(server.env["PRIVIA_DATABASE"]) as conn:
        rows = conn.execute("SELECT id, role, content FROM messages").fetchall()
    assert len(rows) == 2 * WRITERS * QUESTIONS_EACH
    stored_ids = {row[0] for row in rows}
    stored_questions = {row[2] for row in rows if row[1] == "user"}
    for n in range(WRITERS):
        assert len(acknowledged[n]) == QUESTIONS_EACH
        for question, message_id in acknowledged[n]:
            assert question in stored_questions
            assert message_id in stored_ids

    total = WRITERS * QUESTIONS_EACH
    print(
        f"\n{total} questions from {WRITERS} threads in {elapsed:.1f}s "
        f"({total / elapsed:.0f}/s); {len(reader_waits)} list reads, "
        f"slowest {max(reader_waits) * 1000:.0f} ms"
    )


def test_sigkill_mid_burst_keeps_every_acknowledged_write(tmp_path):
    server = LiveServer(tmp_path, PRIVIA_QUESTIONS_PER_MINUTE="0").start()
    users = [sign_in(server.url, f"killed{n}@example.com") for n in range(4)]
    acknowledged = []  # (question, reply message id) for each 2xx or done event
    lock = threading.Lock()
    enough = threading.Event()

    def keep(question, message_id):
        with lock:
            acknowledged.append((question, message_id))
            if len(acknowledged) >= 150:
                enough.set()

    def query(n):
        session = requests.Session()
        for q in range(10_000):
            question = f"query {n}-{q}"
            try:
                response = session.post(
                    f"{server.url}/api/query",
                    json={"question": question},
                    headers=users[n],
                    timeout=10,
                )
            except requests.RequestException:
                return
            if response.status_code == 200:
                keep(question, response.json()["message_id"])

    def stream(n):
        session = requests.Session()
        for q in range(10_000):
            question = f"stream {n}-{q}"
            try:
                response = session.post(
                    f"{server.url}/api/stream",
                    json={"question": question},
                    headers=users[n],
                    timeout=10,
                )
                events = parse_events(response.text)
            except requests.RequestException:
                return
            done = [data for kind, data in events if kind == "done"]
            if done:
                keep(question, json.loads(done[0])["message_id"])

    threads = [threading.Thread(target=query, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=stream, args=(3,)))
    for thread in threads:
        thread.start()
    assert enough.wait(60), "the burst did not get going"
    server.process.kill()
    server.process.wait()
    for thread in threads:
        thread.join()
    server.log_file.close()

    db = server.env["PRIVIA_DATABASE"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    restarted = LiveServer(tmp_path, PRIVIA_DATABASE=db).start()
    try:
        # The restarted server answers from the same file, and sign-in still works.
        assert requests.get(f"{restarted.url}/api/health").json()["database"] == "ok"
        sign_in_body = {"email": "killed0@example.com", "password": "load-password"}
        assert (
            requests.post(
                f"{restarted.url}/api/auth/login", json=sign_in_body
            ).status_code
            == 200
        )
    finally:
        restarted.stop()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT id, role, content FROM messages").fetchall()
    stored_ids = {row[0] for row in rows}
    stored_questions = {row[2] for row in rows if row[1] == "user"}
    missing = [
        (question, message_id)
        for question, message_id in acknowledged
        if question not in stored_questions or message_id not in stored_ids
    ]
    assert missing == []
    print(
        f"\nkilled after {len(acknowledged)} acknowledged writes; "
        f"{len(rows)} messages on disk, none acknowledged missing"
    )


def test_a_burst_of_logins_does_not_hold_up_other_requests(tmp_path):
    # Real-strength hashes: each login spends a few hundred milliseconds of CPU.
    server = LiveServer(tmp_path, PRIVIA_PASSWORD_ROUNDS="600000").start()
    try:
        body = {"email": "burst@example.com", "password": "burst-password"}
        requests.post(f"{server.url}/api/auth/signup", json=body).raise_for_status()
        finished, statuses = {}, []

        def login(n):
            response = requests.post(f"{server.url}/api/auth/login", json=body)
            statuses.append(response.status_code)
            finished[f"login {n}"] = time.monotonic()

        def check_health():
            time.sleep(0.2)  # let the logins take the hashing slots first
            for n in range(5):
                statuses.append(requests.get(f"{server.url}/api/health").status_code)
            finished["health"] = time.monotonic()

        started = time.monotonic()
        run_threads([lambda n=n: login(n) for n in range(8)] + [check_health])
    finally:
        server.stop()

    assert statuses == [200] * 13
    # Ordering, not speed: five health checks got through while logins queued.
    last_login = max(at for name, at in finished.items() if name != "health")
    assert finished["health"] < last_login
    print(
        f"\n8 logins at 600,000 rounds took {last_login - started:.2f}s; "
        f"5 health checks meanwhile took {finished['health'] - started - 0.2:.2f}s"
    )


def test_parallel_guesses_cannot_slip_past_the_login_limit(tmp_path):
    server = LiveServer(
        tmp_path, PRIVIA_PASSWORD_ROUNDS="200000", PRIVIA_LOGIN_MAX_FAILURES="5"
    ).start()
    try:
        body = {"email": "target@example.com", "password": "target-password"}
        requests.post(f"{server.url}/api/auth/signup", json=body).raise_for_status()
        statuses = []

        def guess(n):
            wrong = body | {"password": f"guess number {n}"}
            response = requests.post(f"{server.url}/api/auth/login", json=wrong)
            statuses.append(response.status_code)

        run_threads([lambda n=n: guess(n) for n in range(30)])
    finally:
        server.stop()

    # Every guess is counted before its hash is checked, so however many
    # arrive at once, only the limit's worth are ever checked.
    assert sorted(statuses) == [400] * 5 + [429] * 25
