"""Password hashing: PBKDF2-SHA256 through passlib, with the cost inside each hash."""

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

T = TypeVar("T")

# Hashing is CPU-bound and takes a few hundred milliseconds. It runs on two
# threads of its own, so a burst of logins never takes the threads other
# requests need, and at the lowest priority, so on a busy core every other
# request goes first and only the logins wait (measured in bench/). Callers
# wait for a hashing thread on the event loop, holding no thread themselves.
HASHING_THREADS = 2
HASHING_NICENESS = 19


def _lower_this_threads_priority() -> None:
    # Linux gives each thread its own nice value; raising it needs no privilege.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
    except OSError:  # pragma: no cover - a system that refuses: hashes keep priority.
        pass


_hashing = ThreadPoolExecutor(
    HASHING_THREADS,
    thread_name_prefix="privia-hashing",
    initializer=_lower_this_threads_priority,
)


class PasswordHasher:
    """Hashes and checks passwords at a fixed PBKDF2 iteration count.

    The sync methods do the work where they are called; the `_in_worker` ones
    run it on a hashing thread and wait for it without blocking the event loop.
    """

    def __init__(self, rounds: int = 600_000) -> None:
        self.rounds = rounds
        self._context = CryptContext(
            schemes=["pbkdf2_sha256"],
            pbkdf2_sha256__default_rounds=rounds,
            pbkdf2_sha256__min_rounds=rounds,
        )

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def verify(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """Check password against stored_hash.

        Returns (matches, new_hash): new_hash is set when the stored hash is
        weaker than today's settings and should replace it. An empty stored
        hash (an account made by OAuth) never matches, and takes as long to
        refuse as a wrong password does.
        """
        if not stored_hash:
            self._context.dummy_verify()
            return False, None
        return self._context.verify_and_update(password, stored_hash)

    def dummy_verify(self) -> None:
        """Spend the time of one check, so an unknown email looks like a wrong password."""
        self._context.dummy_verify()

    async def hash_in_worker(self, password: str) -> str:
        return await on_hashing_thread(self.hash, password)

    async def verify_in_worker(
        self, password: str, stored_hash: str
    ) -> tuple[bool, str | None]:
        return await on_hashing_thread(self.verify, password, stored_hash)

    async def dummy_verify_in_worker(self) -> None:
        await on_hashing_thread(self.dummy_verify)


async def on_hashing_thread(work: Callable[..., T], *args: object) -> T:
    """Run work on a hashing thread; the caller waits on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, work, *args)
