"""Password hashing: PBKDF2-SHA256 through passlib, with the cost inside each hash."""

import threading

from passlib.context import CryptContext

# Hashing is CPU-bound and holds a worker thread for a few hundred
# milliseconds; two at once keep both cores busy without letting a burst of
# logins take every thread the other requests need.
_hashing_slots = threading.BoundedSemaphore(2)


class PasswordHasher:
    """Hashes and checks passwords at a fixed PBKDF2 iteration count.

    Call it from a worker thread, never from the event loop.
    """

    def __init__(self, rounds: int = 600_000) -> None:
        self.rounds = rounds
        self._context = CryptContext(
            schemes=["pbkdf2_sha256"],
            pbkdf2_sha256__default_rounds=rounds,
            pbkdf2_sha256__min_rounds=rounds,
        )

    def hash(self, password: str) -> str:
        with _hashing_slots:
            return self._context.hash(password)

    def verify(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """Check password against stored_hash.

        Returns (matches, new_hash): new_hash is set when the stored hash is
        weaker than today's settings and should replace it. An empty stored
        hash (an account made by OAuth) never matches, and takes as long to
        refuse as a wrong password does.
        """
        with _hashing_slots:
            if not stored_hash:
                self._context.dummy_verify()
                return False, None
            return self._context.verify_and_update(password, stored_hash)

    def dummy_verify(self) -> None:
        """Spend the time of one check, so an unknown email looks like a wrong password."""
        with _hashing_slots:
            self._context.dummy_verify()
