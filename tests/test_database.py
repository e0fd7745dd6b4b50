import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from database import (
    SCHEMA_VERSION,
    Database,
    apply_schema,
    connect,
    utc_now,
    write_transaction,
)
from tokens import load_or_create_secret


def test_schema_applies_twice_and_records_its_version(tmp_path):
    path = tmp_path / "nested" / "privia.db"
    apply_schema(path)
    apply_schema(path)

    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    conn.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "privia.db"
    apply_schema(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        apply_schema(path)


def seed(conn):
    conn.execute("INSERT INTO users (id, email) VALUES ('u', 'u@example.com')")
    for conversation_id, status in (("c1", "empty"), ("c2", "active")):
        conn.execute(
            "INSERT INTO conversations (id, user_id, title, status, created_at, updated_at)"
            " VALUES (?, 'u', 't', ?, '', '')",
            (conversation_id, status),
        )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, role, content, timestamp)"
        " VALUES ('m', 'c2', 'user', 'hi', '')"
    )


def test_one_empty_conversation_per_user(tmp_path):
    apply_schema(tmp_path / "p.db")
    conn = connect(tmp_path / "p.db")
    seed(conn)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at)"
            " VALUES ('c3', 'u', 't', '', '')"
        )


def test_deletes_cascade(tmp_path):
    apply_schema(tmp_path / "p.db")
    conn = connect(tmp_path / "p.db")
    seed(conn)
    conn.execute("DELETE FROM users WHERE id = 'u'")
    assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_messages_need_a_conversation(tmp_path):
    apply_schema(tmp_path / "p.db")
    conn = connect(tmp_path / "p.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, content, timestamp)"
            " VALUES ('m', 'nope', 'user', 'hi', '')"
        )


def test_timestamps_sort_as_text_and_carry_an_offset():
    first, second = utc_now(), utc_now()
    assert first <= second
    parsed = datetime.fromisoformat(first)
    assert parsed.utcoffset().total_seconds() == 0
    assert len(first) == len("2026-01-01T00:00:00.000000+00:00")


def test_secret_key_is_made_once_and_kept_private(tmp_path):
    path = tmp_path / "keys" / "secret_key"
    key = load_or_create_secret(path)
    assert load_or_create_secret(path) == key
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_emptied_key_file_is_refused(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("\n")
    with pytest.raises(RuntimeError, match="delete the file"):
        load_or_create_secret(path)


def test_each_thread_keeps_its_own_connection(tmp_path):
    apply_schema(tmp_path / "p.db")
    db = Database(tmp_path / "p.db")
    here = [db.run_sync(lambda conn: conn) for _ in range(2)]
    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(db.run_sync, lambda conn: conn).result()
    assert here[0] is here[1]
    assert there is not here[0]


def test_a_database_error_reopens_the_connection(tmp_path):
    apply_schema(tmp_path / "p.db")
    db = Database(tmp_path / "p.db")
    first = db.run_sync(lambda conn: conn)
    with pytest.raises(sqlite3.OperationalError):
        db.run_sync(lambda conn: conn.execute("SELECT * FROM missing"))
    assert db.run_sync(lambda conn: conn) is not first


def test_a_transaction_left_open_is_rolled_back(tmp_path):
    apply_schema(tmp_path / "p.db")
    db = Database(tmp_path / "p.db")

    def forget_to_commit(conn):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO users (id, email) VALUES ('u', 'u@example.com')")

    db.run_sync(forget_to_commit)
    assert not db.run_sync(lambda conn: conn.in_transaction)
    count = db.run_sync(
        lambda conn: conn.execute("SELECT COUNT(*) FROM users").fetchone()
    )
    assert count[0] == 0


def test_writers_of_one_process_wait_for_each_other_not_for_sqlite(tmp_path):
    path = tmp_path / "p.db"
    apply_schema(path)
    inside, order = threading.Event(), []

    def write_first():
        with write_transaction(connect(path)):
            inside.set()
            time.sleep(0.2)
            order.append("first")

    def write_second():
        conn = connect(path)
        # Without a busy timeout SQLite would refuse this writer at once.
        conn.execute("PRAGMA busy_timeout = 0")
        assert inside.wait(10)
        with write_transaction(conn):
            order.append("second")

    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(write_first), pool.submit(write_second)]
        for result in results:
            result.result(timeout=20)
    assert order == ["first", "second"]


def test_waiting_writers_leave_the_thread_pool_to_reads(settings, engine, monkeypatch):
    """Sixty writes queue for the one writer slot; a read still gets a thread."""
    from threading import Event

    from starlette.testclient import TestClient

    import handlers.conversations
    from conftest import AuthActions
    from privia import create_app

    release, writing = Event(), []

    def slow_create(conn, user_id, title, cooldown):
        writing.append(user_id)
        release.wait(10)
        raise RuntimeError("not meant to finish")

    app = create_app(settings, engine)
    client = TestClient(app, raise_server_exceptions=False)
    with client, ThreadPoolExecutor(61) as pool:
        headers = AuthActions(client).headers()
        monkeypatch.setattr(handlers.conversations, "create_for_user", slow_create)
        creates = [
            pool.submit(client.post, "/api/conversations", headers=headers)
            for _ in range(60)
        ]
        while not writing:
            time.sleep(0.01)
        time.sleep(0.3)  # let the other 59 arrive and queue

        health = pool.submit(client.get, "/api/health").result(timeout=5)
        writing_during_read = len(writing)
        release.set()
        for future in creates:
            future.result()

    assert health.status_code == 200
    assert writing_during_read == 1
