"""Password hashing: PBKDF2-SHA256 through passlib, with the cost inside each hash."""

import anyio
import anyio.to_thread
from passlib.context import CryptContext

# Hashing is CPU-bound and takes a few hundred milliseconds; two at once keep
# both cores busy. Callers queue for a slot on the event loop, before taking a
# worker thread, so a burst of logins leaves the thread pool to other requests.
HASHING_SLOTS = 2


class PasswordHasher:
    """Hashes and checks passwords at a fixed PBKDF2 iteration count.

    The sync methods do the work where they are called; the async ones run
    it in a worker thread, at most HASHING_SLOTS at a time.
    """

    def __init__(self, rounds: int = 600_000) -> None:
        self.rounds = rounds
        self._context = CryptContext(
            schemes=["pbkdf2_sha256"],
            pbkdf2_sha256__default_rounds=rounds,
            pbkdf2_sha256__min_rounds=rounds,
        )
        # Made on first use: a limiter belongs to the event loop that uses it.
        self._slots: anyio.CapacityLimiter | None = None

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
        return await self._in_worker(self.hash, password)

    async def verify_in_worker(
        self, password: str, stored_hash: str
    ) -> tuple[bool, str | None]:
        return await self._in_worker(self.verify, password, stored_hash)

    async def dummy_verify_in_worker(self) -> None:
        await self._in_worker(self.dummy_verify)

    async def _in_worker(self, work, *args):
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(HASHING_SLOTS)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._slots)
