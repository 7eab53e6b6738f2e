"""The index of who waits for whom: waiters become due when what they wait for is applied or appears,
no wake-up is lost to the apply/record race, awaited Secrets are polled on a backoff, and memory is
bounded."""

from __future__ import annotations

from spectra.operator.waits import ObjectKey, SecretKey, Waits

MONITOR: ObjectKey = ("Monitor", "default", "checkout")
POLICY: ObjectKey = ("EscalationPolicy", "default", "primary")
SCHEDULE: ObjectKey = ("Schedule", "default", "platform-primary")
OTHER: ObjectKey = ("Contact", "default", "alice")
SECRET: SecretKey = ("default", "oncall-private")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def waits(
    clock: Clock | None = None,
    *,
    max_waiters: int = 100,
    remembered: int = 100,
    first_poll_s: float = 0.5,
    max_poll_s: float = 10.0,
) -> Waits:
    return Waits(
        clock=clock or Clock(),
        max_waiters=max_waiters,
        remembered=remembered,
        first_poll_s=first_poll_s,
        max_poll_s=max_poll_s,
    )


def test_a_waiter_is_due_when_what_it_names_is_applied() -> None:
    index = waits()
    assert index.record(MONITOR, [POLICY], [], since=index.mark())
    assert index.waiters(POLICY) == {MONITOR}
    assert index.waiting_for(MONITOR) == {POLICY}
    assert len(index) == 1

    index.applied(OTHER)
    assert index.take_due() == []
    assert not index.has_work()
    index.applied(POLICY)
    assert index.has_work()
    assert index.take_due() == [MONITOR]
    assert index.take_due() == []  # taken once
    assert not index.has_work()
    # Still waiting until its own re-apply says otherwise.
    assert index.waiters(POLICY) == {MONITOR}


def test_a_waiter_that_waits_for_nothing_leaves_the_index() -> None:
    index = waits()
    index.record(MONITOR, [POLICY], [SECRET], since=index.mark())
    index.record(MONITOR, [], [], since=index.mark())
    assert len(index) == 0
    assert index.waiters(POLICY) == frozenset()
    assert index.polled_secrets() == frozenset()


def test_a_new_record_replaces_the_old_one() -> None:
    index = waits()
    index.record(POLICY, [], [SECRET], since=index.mark())
    index.record(POLICY, [SCHEDULE], [], since=index.mark())
    assert index.waiting_for(POLICY) == {SCHEDULE}
    assert index.waiters(SECRET) == frozenset()
    assert index.polled_secrets() == frozenset()
    index.applied(SCHEDULE)
    assert index.take_due() == [POLICY]


def test_forgotten_objects_are_neither_waiters_nor_due() -> None:
    index = waits()
    index.record(MONITOR, [POLICY], [], since=index.mark())
    index.applied(POLICY)
    index.forget(MONITOR)
    assert index.take_due() == []
    assert index.waiters(POLICY) == frozenset()
    index.applied(POLICY)
    assert index.take_due() == []


def test_an_announcement_between_apply_and_record_is_not_lost() -> None:
    index = waits()
    before_apply = index.mark()
    index.applied(POLICY)  # stored and announced while the monitor's apply still saw it missing
    index.record(MONITOR, [POLICY], [], since=before_apply)
    assert index.take_due() == [MONITOR]

    # An announcement before the apply began was seen by that apply: no wake-up.
    index.record(MONITOR, [POLICY], [], since=index.mark())
    assert index.take_due() == []


def test_a_forgotten_announcement_counts_as_recent() -> None:
    index = waits(remembered=2)
    before_apply = index.mark()
    index.applied(POLICY)
    index.applied(OTHER)
    index.applied(SCHEDULE)  # POLICY's announcement is forgotten now
    index.record(MONITOR, [POLICY], [], since=before_apply)
    assert index.take_due() == [MONITOR]  # one re-apply too many, never one too few
    # A mark taken after the forgetting needs no such caution.
    index.record(MONITOR, [POLICY], [], since=index.mark())
    assert index.take_due() == []


def test_the_index_is_bounded() -> None:
    index = waits(max_waiters=2)
    assert index.record(MONITOR, [POLICY], [], since=index.mark())
    assert index.record(POLICY, [SCHEDULE], [], since=index.mark())
    assert not index.record(SCHEDULE, [OTHER], [], since=index.mark())
    assert index.refused == 1
    assert len(index) == 2
    # Those already in can change what they wait for; one that leaves makes room.
    assert index.record(MONITOR, [OTHER], [], since=index.mark())
    index.forget(POLICY)
    assert index.record(SCHEDULE, [OTHER], [], since=index.mark())
    index.applied(OTHER)
    assert sorted(index.take_due()) == sorted([MONITOR, SCHEDULE])


def test_awaited_secrets_are_polled_on_a_backoff() -> None:
    clock = Clock()
    index = waits(clock, first_poll_s=0.5, max_poll_s=4.0)
    assert index.next_poll_in() is None
    index.record(POLICY, [], [SECRET], since=index.mark())
    assert index.polled_secrets() == {SECRET}
    assert index.next_poll_in() == 0.5
    assert index.secrets_due() == []

    assert not index.has_work()
    clock.now += 0.5
    assert index.has_work()

    intervals = []
    for _ in range(5):
        clock.now += index.next_poll_in() or 0.0
        assert index.secrets_due() == [SECRET]
        index.secret_read(SECRET, None)  # not there yet
        intervals.append(index.next_poll_in())
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert index.take_due() == []


def test_a_secret_that_appears_makes_its_waiters_due() -> None:
    clock = Clock()
    index = waits(clock, first_poll_s=0.5, max_poll_s=4.0)
    index.record(POLICY, [], [SECRET], since=index.mark())
    index.record(MONITOR, [], [SECRET], since=index.mark())
    index.secret_read(SECRET, frozenset({"slack-webhook"}))
    assert sorted(index.take_due()) == sorted([MONITOR, POLICY])

    # The same keys again: nothing new. A key added (the one that was missing): due again, polled soon.
    index.secret_read(SECRET, frozenset({"slack-webhook"}))
    assert index.take_due() == []
    assert index.next_poll_in() == 2.0
    index.secret_read(SECRET, frozenset({"slack-webhook", "bob-phone"}))
    assert sorted(index.take_due()) == sorted([MONITOR, POLICY])
    assert index.next_poll_in() == 0.5

    # Gone again: nobody benefits from a re-apply.
    index.secret_read(SECRET, None)
    assert index.take_due() == []


def test_a_secret_that_exists_at_the_first_read_wakes_its_waiters() -> None:
    """The waiter's apply may have read an old cached answer: the first fresh read decides."""
    index = waits()
    index.record(POLICY, [], [SECRET], since=index.mark())
    index.secret_read(SECRET, frozenset({"incident-webhook"}))
    assert index.take_due() == [POLICY]


def test_a_secret_read_between_apply_and_record_is_not_lost() -> None:
    index = waits()
    index.record(MONITOR, [], [SECRET], since=index.mark())
    index.secret_read(SECRET, None)
    before_apply = index.mark()
    index.secret_read(SECRET, frozenset({"k"}))  # MONITOR is due; POLICY is being applied meanwhile
    index.record(POLICY, [], [SECRET], since=before_apply)
    assert sorted(index.take_due()) == sorted([MONITOR, POLICY])


def test_a_secret_nobody_waits_for_is_not_polled() -> None:
    index = waits()
    index.record(POLICY, [], [SECRET], since=index.mark())
    index.forget(POLICY)
    assert index.polled_secrets() == frozenset()
    index.secret_read(SECRET, frozenset({"k"}))  # a read that was under way: ignored
    assert index.take_due() == []
    assert index.next_poll_in() is None


def test_wake_up_is_called_for_due_waiters_and_new_polls() -> None:
    index = waits()
    calls: list[str] = []
    index.on_due(lambda: calls.append("wake"))
    index.applied(POLICY)  # nobody waits
    assert calls == []
    index.record(MONITOR, [POLICY], [], since=index.mark())
    assert calls == []
    index.applied(POLICY)
    assert calls == ["wake"]
    index.applied(POLICY)  # already due
    assert calls == ["wake"]
    index.record(POLICY, [], [SECRET], since=index.mark())  # a new Secret to poll: the loop may be asleep
    assert calls == ["wake", "wake"]


def test_forget_absent_keeps_records_made_after_the_list() -> None:
    index = waits()
    index.record(MONITOR, [POLICY], [], since=index.mark())
    index.record(OTHER, [POLICY], [], since=index.mark())
    listed = index.mark()
    index.record(SCHEDULE, [POLICY], [], since=index.mark())  # created after the list was taken
    assert index.forget_absent({OTHER}, listed) == 1
    assert index.waiters(POLICY) == {OTHER, SCHEDULE}
