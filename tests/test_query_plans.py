"""The reads a client repeats use indexes, so they stay as fast on a large database.

Each test runs a real query function with SQLite's trace on, then asks SQLite
how it plans every statement the function ran.
"""

import pytest

from database import apply_schema, connect
from handlers.chat import list_recent_turns
from handlers.conversations import (
    get_conversation,
    list_conversations_of,
    list_messages,
)


@pytest.fixture
def conn(tmp_path):
    apply_schema(tmp_path / "p.db")
    conn = connect(tmp_path / "p.db")
    yield conn
    conn.close()


def plans_of(conn, work, *args):
    """Run work(conn, *args); return the query plan lines of each statement it ran."""
    statements = []
    conn.set_trace_callback(statements.append)
    work(conn, *args)
    conn.set_trace_callback(None)
    assert statements
    return [
        [row["detail"] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        for sql in statements
    ]


@pytest.mark.parametrize(
    "work, args",
    [
        (list_conversations_of, ("user-id",)),
        (list_messages, ("conversation-id",)),
        (get_conversation, ("conversation-id", "user-id")),
        (list_recent_turns, ("conversation-id", 20)),
    ],
)
def test_reads_search_an_index_and_never_scan_or_sort(conn, work, args):
    for plan in plans_of(conn, work, *args):
        tables = [line for line in plan if line.startswith(("SEARCH", "SCAN"))]
        assert tables, plan
        assert all(line.startswith("SEARCH") and "INDEX" in line for line in tables), (
            plan
        )
        assert not any("TEMP B-TREE" in line for line in plan), plan


def test_the_list_counts_messages_from_the_index_alone(conn):
    [plan] = plans_of(conn, list_conversations_of, "user-id")
    assert any(
        "messages USING COVERING INDEX ix_messages_conversation_timestamp" in line
        for line in plan
    ), plan
