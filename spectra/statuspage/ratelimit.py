"""An in-memory sliding-window rate limiter: at most `limit` hits per key in any `window_s` seconds.

Used on subscribe, keyed by client IP and by mailbox (:func:`mailbox_key`). Per process (no shared
state between replicas): a limit of 5 an hour becomes 5 an hour per replica, which is still a limit.
Memory is bounded: keys whose hits have all left the window are dropped, and past `max_keys` the
oldest key is evicted.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = float(window_s)
        self._clock = clock
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _current(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        cutoff = now - self.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def hit(self, key: str) -> bool:
        """Count one attempt for `key`; False (and not counted) when the key is already at its limit."""
        with self._lock:
            now = self._clock()
            hits = self._current(key, now)
            if hits is not None and len(hits) >= self.limit:
                return False
            if hits is None:
                self._evict(now)
                hits = self._hits[key] = deque()
            hits.append(now)
            self._hits.move_to_end(key)
            return True

    def remaining(self, key: str) -> int:
        with self._lock:
            hits = self._current(key, self._clock())
            return self.limit - (len(hits) if hits is not None else 0)

    def retry_after_s(self, key: str) -> int:
        """Seconds until `key` may hit again (0 when it may now)."""
        with self._lock:
            now = self._clock()
            hits = self._current(key, now)
            if hits is None or len(hits) < self.limit:
                return 0
            return max(1, int(hits[0] + self.window_s - now + 0.999))

    def __len__(self) -> int:
        return len(self._hits)

    def _evict(self, now: float) -> None:
        # Drop keys whose window has passed (oldest first), then the least recently hit beyond max_keys.
        for key in list(itertools.islice(self._hits, max(0, len(self._hits) - self._max_keys) + 16)):
            self._current(key, now)
        while len(self._hits) >= self._max_keys:  # room for the key about to be added
            self._hits.popitem(last=False)


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for rate limits: lower-cased, ``+tag`` cut from the local part.

    ``Bob+x@Example.com`` and ``bob@example.com`` are one mailbox. Dots are kept: only some providers
    ignore them, and treating ``b.ob`` as ``bob`` would let one person's requests throttle another's.
    """
    local, _, domain = address.strip().rpartition("@")
    return f"{local.split('+', 1)[0].lower()}@{domain.lower()}"
