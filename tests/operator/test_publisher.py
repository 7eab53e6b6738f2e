"""StatusPublisher: what it patches and when (a real store on SQLite and MariaDB; a recording Kube)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.operator.kube import Kube
from spectra.operator.publisher import StatusPublisher
from spectra.operator.settings import StatusSettings
from spectra.operator.statuses import Facts, Key
from spectra.reconcile import CLUSTER_SOURCE, apply_one
from spectra.store import Monitor as MonitorRow
from spectra.store import save_states, session_factory
from tests.factories.manifests import monitor
from tests.support.waiting import eventually

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class RecordingKube(Kube):
    """Records status patches and Events instead of sending them (no API client: nothing else is called)."""

    def __init__(self) -> None:  # no super().__init__(): no API client
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []
        self.gone: set[str] = set()

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
        if name in self.gone:
            return False
        self.patches.append((kind, namespace, name, status))
        return True

    def event(self, involved: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((involved["name"], type_, reason))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def mono(self) -> float:
        return (self.now - START).total_seconds()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """The shared migrated database, seeded."""
    factory = session_factory(engine)
    with factory() as session:
        for name in ("a", "b"):
            apply_one(session, parse_object(monitor(name, url=f"https://example.com/{name}")), CLUSTER_SOURCE)
        session.commit()
    return factory


def check(sessions: sessionmaker[Session], name: str, state: str, at: datetime, latency: float = 10.0) -> None:
    with sessions() as session:
        monitor_id = session.query(MonitorRow.resource_id).filter(MonitorRow.name == name).scalar()
        row = {
            "monitor_id": monitor_id,
            "location": "default",
            "state": state,
            "last_status": state,
            "consecutive_failures": 0,
            "consecutive_successes": 1,
            "last_check_at": at,
            "last_latency_ms": latency,
            "last_reason": "",
            "changed_at": at,
            "facts": None,
        }
        save_states(session, [row])
        session.commit()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


@pytest.fixture
def publisher(sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock) -> StatusPublisher:
    settings = StatusSettings(interval_seconds=10, refresh_seconds=300, max_patches_per_second=1000)
    return StatusPublisher(
        sessions,
        kube,
        settings,
        clock=lambda: clock.now,
        monotonic=clock.mono,
    )


async def test_patches_on_change_only(
    publisher: StatusPublisher, sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    check(sessions, "a", "up", clock.now)
    check(sessions, "b", "up", clock.now)
    assert await publisher.cycle() == 2  # everything once
    assert {status["state"] for *_, status in kube.patches} == {"up"}
    clock.advance(10)
    assert await publisher.cycle() == 0  # nothing changed

    # A new check moves only minor facts: not published before refreshSeconds.
    clock.advance(20)
    check(sessions, "a", "up", clock.now, latency=12.0)
    assert await publisher.cycle() == 0
    clock.advance(300)
    check(sessions, "a", "up", clock.now, latency=12.0)
    assert await publisher.cycle() == 2
    # "b" was not checked again: it went pending (major, first); "a" had its last publish 330 s ago.
    (b, a) = kube.patches[-2:]
    assert (b[2], b[3]["state"]) == ("b", "pending")
    assert (a[2], a[3]["lastLatencyMs"]) == ("a", 12.0)


async def test_state_change_is_published_at_once_with_an_event(
    publisher: StatusPublisher, sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    check(sessions, "a", "up", clock.now)
    await publisher.cycle()
    clock.advance(10)
    check(sessions, "a", "down", clock.now)
    assert await publisher.cycle() == 1
    assert kube.patches[-1][3]["state"] == "down"
    assert kube.events == [("a", "Warning", "MonitorDown")]
    clock.advance(10)
    check(sessions, "a", "up", clock.now)
    await publisher.cycle()
    assert kube.events[-1] == ("a", "Normal", "MonitorUp")


async def test_a_restart_starts_from_what_the_cluster_shows(
    publisher: StatusPublisher, sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    check(sessions, "a", "up", clock.now)
    check(sessions, "b", "up", clock.now)
    await publisher.cycle()
    shown = [
        {"kind": kind, "metadata": {"namespace": ns, "name": name}, "status": status}
        for kind, ns, name, status in kube.patches
    ]
    restarted = StatusPublisher(
        sessions,
        kube,
        publisher.settings,
        clock=lambda: clock.now,
        monotonic=clock.mono,
    )
    restarted.seed(shown)
    assert await restarted.cycle() == 0


async def test_uptime_is_computed_once_a_minute_and_carried_between(
    publisher: StatusPublisher,
    sessions: sessionmaker[Session],
    kube: RecordingKube,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check(sessions, "a", "up", clock.now)
    await publisher.cycle()
    first = kube.patches[0][3]
    assert "uptime24h" in first
    assert "uptime30d" in first
    calls: list[bool] = []
    original = publisher._collect

    def spy(uptime: bool = True) -> dict[Key, Facts]:
        calls.append(uptime)
        return original(uptime)

    monkeypatch.setattr(publisher, "_collect", spy)
    for _ in range(12):  # two minutes of 10 s cycles
        clock.advance(10)
        await publisher.cycle()
    assert calls.count(True) == 2
    assert calls.count(False) == 10


async def test_objects_gone_from_the_cluster_are_dropped(
    publisher: StatusPublisher, sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    kube.gone.add("b")
    check(sessions, "a", "up", clock.now)
    check(sessions, "b", "up", clock.now)
    assert await publisher.cycle() == 1
    assert publisher.patches == 1


async def test_refreshes_take_half_a_cycles_budget_stalest_first(
    sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    # A budget of 2 patches per second over 1 s cycles: one refresh per cycle.
    settings = StatusSettings(interval_seconds=1, refresh_seconds=60, max_patches_per_second=2)
    publisher = StatusPublisher(
        sessions,
        kube,
        settings,
        clock=lambda: clock.now,
        monotonic=clock.mono,
    )
    check(sessions, "a", "up", clock.now)
    await publisher.cycle()
    clock.advance(1)
    check(sessions, "b", "up", clock.now)  # "b" first published a second after "a"
    await publisher.cycle()
    clock.advance(70)
    check(sessions, "a", "up", clock.now, latency=11.0)
    check(sessions, "b", "up", clock.now, latency=11.0)
    assert await publisher.cycle() == 1
    assert kube.patches[-1][2] == "a"  # the stalest
    clock.advance(1)
    assert await publisher.cycle() == 1
    assert kube.patches[-1][2] == "b"


async def test_run_publishes_while_leading_and_seeds_from_the_cluster_on_taking_the_lead(
    publisher: StatusPublisher, sessions: sessionmaker[Session], kube: RecordingKube, clock: Clock
) -> None:
    check(sessions, "a", "up", clock.now)
    check(sessions, "b", "up", clock.now)
    previous = StatusPublisher(sessions, kube, publisher.settings, clock=lambda: clock.now, monotonic=clock.mono)
    await previous.cycle()  # another replica published both; the cluster shows "a"'s status
    shown = [
        {"kind": kind, "metadata": {"namespace": ns, "name": name}, "status": status}
        for kind, ns, name, status in kube.patches
        if name == "a"
    ]
    kube.patches.clear()
    leading = {"now": False}
    calls = {"is_leader": 0, "cluster_objects": 0}

    def is_leader() -> bool:
        calls["is_leader"] += 1
        return leading["now"]

    def cluster_objects() -> Sequence[Mapping[str, Any]]:
        calls["cluster_objects"] += 1
        return shown

    publisher.settings = StatusSettings(interval_seconds=0.05, refresh_seconds=300, max_patches_per_second=1000)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop, is_leader, cluster_objects))
    try:
        await eventually(lambda: calls["is_leader"] >= 3)
        assert kube.patches == []  # a follower publishes nothing and reads nothing from the cluster
        assert calls["cluster_objects"] == 0

        leading["now"] = True
        await eventually(lambda: kube.patches)
        asked = calls["is_leader"]
        await eventually(lambda: calls["is_leader"] >= asked + 3)
        assert [name for _, _, name, _ in kube.patches] == ["b"]  # "a" is shown as it is: not patched again
        assert calls["cluster_objects"] == 1  # seeded once, on taking the lead

        leading["now"] = False
        asked = calls["is_leader"]
        await eventually(lambda: calls["is_leader"] >= asked + 2)
        leading["now"] = True
        await eventually(lambda: calls["cluster_objects"] == 2)  # the lead again: seeded again
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert task.done()
