"""Abuse limits: how many times something may happen per key within a window.

The counts live in this process's memory, which is enough for Privia's one
process; they start from zero when it restarts.
"""

import math
import time
from collections import deque
from collections.abc import Callable

# How many events pass between sweeps of keys whose window has run out.
SWEEP_EVERY = 1024


class RateLimit:
    """At most `limit` events per key in any `window` seconds; a limit of 0 is off.

    Only the last `limit` times of each key are kept, so one key costs at most
    that much memory, and keys that have gone quiet are swept away.
    """

    # TODO: the counts are per process; running several Privia processes
    # behind one address multiplies each limit by their number.

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._added = 0

    def retry_after(self, key: str) -> int | None:
        """Seconds until key may act again (at least 1), or None when it may now."""
        if self.limit <= 0:
            return None
        times = self._events.get(key)
        if times is None or len(times) < self.limit:
            return None
        remaining = times[0] + self.window - self.clock()
        if remaining <= 0:
            return None
        return max(1, math.ceil(remaining))

    def add(self, key: str) -> None:
        """Count one event for key."""
        if self.limit <= 0:
            return
        self._events.setdefault(key, deque(maxlen=self.limit)).append(self.clock())

        self._added += 1
        if self._added % SWEEP_EVERY == 0:
            self.sweep()

    def reset(self, key: str) -> None:
        """Forget key's events."""
        self._events.pop(key, None)

    def undo(self, key: str) -> None:
        """Forget key's latest event (one counted in advance that did not happen)."""
        times = self._events.get(key)
        if times:
            times.pop()

    def sweep(self) -> None:
        """Drop the keys whose latest event is older than the window."""
        oldest = self.clock() - self.window
        for key in [key for key, times in self._events.items() if times[-1] <= oldest]:
            del self._events[key]

    def __len__(self) -> int:
        return len(self._events)
