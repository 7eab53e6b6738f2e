"""The sliding-window limiter, on a fake clock; the mailbox key it is used with on subscribe."""

from __future__ import annotations

import threading

import pytest

from spectra.statuspage.ratelimit import SlidingWindowLimiter, mailbox_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("limit", "window", "hits_at", "expected"),
    [
        (3, 60, [0, 1, 2, 3], [True, True, True, False]),
        (3, 60, [0, 1, 2, 60], [True, True, True, True]),  # the first hit left the window
        (3, 60, [0, 1, 2, 59.9], [True, True, True, False]),
        (1, 10, [0, 5, 10, 15, 20], [True, False, True, False, True]),
        (2, 10, [0, 0, 0, 9, 10, 10, 10], [True, True, False, False, True, True, False]),
    ],
)
def test_sliding_window(limit: int, window: float, hits_at: list[float], expected: list[bool]) -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(limit, window, clock=clock)
    start = clock.now
    results = []
    for offset in hits_at:
        clock.now = start + offset
        results.append(limiter.hit("k"))
    assert results == expected


def test_refused_hits_are_not_counted_and_keys_are_independent() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 100, clock=clock)
    assert limiter.hit("a")
    assert limiter.hit("a")
    for _ in range(10):
        assert not limiter.hit("a")
    assert limiter.hit("b")
    assert limiter.remaining("a") == 0
    assert limiter.remaining("b") == 1
    assert limiter.remaining("c") == 2
    clock.now += 100  # refused attempts did not extend the window
    assert limiter.hit("a")


def test_retry_after() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 100, clock=clock)
    assert limiter.retry_after_s("a") == 0
    limiter.hit("a")
    clock.now += 30
    limiter.hit("a")
    assert limiter.retry_after_s("a") == 70
    clock.now += 69.5
    assert limiter.retry_after_s("a") == 1
    clock.now += 0.5
    assert limiter.retry_after_s("a") == 0


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 10, clock=clock, max_keys=50)
    for n in range(500):
        assert limiter.hit(f"key{n}")
    assert len(limiter) <= 50
    assert not limiter.hit("key499")  # the most recent keys are kept
    clock.now += 11
    limiter.hit("fresh")
    assert len(limiter) == 50 - 16 + 1  # each new key drops up to 16 expired ones
    for n in range(5):
        limiter.hit(f"later{n}")
    assert len(limiter) == 6  # all the expired keys are gone


def test_threads_never_exceed_the_limit() -> None:
    limiter = SlidingWindowLimiter(100, 3600)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            ok = limiter.hit("shared")
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 100
    assert len(allowed) == 400


@pytest.mark.parametrize(("limit", "window"), [(0, 10), (1, 0), (-1, 5)])
def test_bad_settings(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        SlidingWindowLimiter(limit, window)


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("bob@example.com", "bob@example.com"),
        ("Bob@Example.COM", "bob@example.com"),
        ("bob+status@example.com", "bob@example.com"),
        ("BOB+Status+More@EXAMPLE.com", "bob@example.com"),
        ("bob+@example.com", "bob@example.com"),
        ("b.o.b@example.com", "b.o.b@example.com"),  # dots are kept: only some providers ignore them
        ("b.o.b+x@example.com", "b.o.b@example.com"),
        ("bob@example.org", "bob@example.org"),
        ("+only-a-tag@example.com", "@example.com"),  # such addresses share one (stricter) limit
        (" bob@example.com ", "bob@example.com"),
    ],
)
def test_mailbox_key_folds_case_and_tags_and_keeps_dots(address: str, mailbox: str) -> None:
    assert mailbox_key(address) == mailbox
