"""SQLite connections: how they are opened, how the schema is applied, how writes begin.

A connection belongs to the thread that opened it. Handlers never touch one on
the event loop: they pass a unit of work to `Database.run`, which hands it the
worker thread's own connection, opened on the thread's first unit of work and
kept for the next ones. Work that writes goes through `Database.write`, which
lets one writer at a time onto a thread.
"""

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool

SCHEMA_PATH = Path(__file__).with_name("schema.sql")
# Bump this, and teach `apply_schema` the step, when schema.sql changes shape.
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

T = TypeVar("T")

# SQLite lets one writer in at a time and makes the others retry with sleeps
# that grow to 100 ms, which under a dozen concurrent writers put p99 latency
# in the hundreds of milliseconds. Writers of this process queue here instead
# and go in the moment the lock is free; BEGIN IMMEDIATE still guards against
# other processes.
_writers = threading.Lock()


def utc_now() -> str:
    """Now as UTC ISO-8601 text with microseconds and offset; it sorts as text."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def connect(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """Open a connection with foreign keys on, Row results and a busy timeout.

    The connection is in autocommit mode: writes group their statements with
    `write_transaction`, reads see the latest committed state. Only `create`
    makes a missing file: a database that vanished while Privia ran is an
    error, not a fresh empty file without tables.
    """
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(
        f"{Path(path).resolve().as_uri()}?mode={mode}",
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # WAL makes a commit durable against a crashed process without an fsync
    # per commit; only a power cut can lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction that holds the write lock from its start.

    BEGIN IMMEDIATE takes the lock up front, so two writers queue on the busy
    timeout instead of failing halfway when both try to upgrade a read. Call it
    from a worker thread: it may wait for this process's other writers.
    """
    # TODO: every write is its own transaction, so when a thousand questions
    # arrive at once the last waits seconds; committing the writes that are
    # waiting together, from one writer thread, would cut that to a few.
    with _writers:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def apply_schema(path: str | Path) -> None:
    """Create the database file and folder if needed and bring the schema up to date."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path, create=True)
    try:
        # The journal mode is stored in the file, so setting it once is enough.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA_PATH.read_text())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {path} has schema version {version}, newer than this "
                f"Privia's {SCHEMA_VERSION}; run a newer Privia against it"
            )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    finally:
        conn.close()


class Database:
    """Where the database lives, and a way to run work on it off the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Opening a connection costs more than the small queries Privia runs,
        # so each thread keeps the one it opened (measured in bench/).
        # TODO: each kept connection may cache up to 2 MiB of pages, so the 40
        # worker threads could hold 80 MiB on a large database; cap cache_size
        # if memory matters more than read speed there.
        self._local = threading.local()
        # Made on first use: a limiter belongs to the event loop that uses it.
        self._writer: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    def run_sync(self, work: Callable[..., T], *args: object) -> T:
        """Call work(conn, *args) on this thread's connection, opening it if needed."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        try:
            return work(conn, *args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error:
            # The file may have been moved, replaced or damaged: the next
            # unit of work opens a fresh connection instead of this one.
            self._local.conn = None
            conn.close()
            raise
        finally:
            # A unit of work must not leave a transaction open for the next.
            if self._local.conn is not None and conn.in_transaction:
                conn.rollback()

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Call work(conn, *args) in a worker thread, so the event loop never waits."""
        return await run_in_threadpool(self.run_sync, work, *args)

    async def write(self, work: Callable[..., T], *args: object) -> T:
        """Like `run`, for work that writes: one at a time, on a thread of its own.

        SQLite lets one writer in at a time anyway. Writers wait for their turn
        here, on the event loop, so a crowd of them holds none of the pool's
        threads that reads (a health check, a page of messages) need.
        """
        if self._writer is None:
            self._writer = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(
            self.run_sync, work, *args, limiter=self._writer
        )
