"""On-call queries and actions (spectra.console.oncall.service) and stored overrides in the one resolution:
who the alerter pages, what the operator writes into Schedule status, the timeline, the calendar feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import policy
from spectra.auth.identity import Actor, Principal
from spectra.console.oncall import service
from spectra.console.oncall.calendar import ics
from spectra.operator.statuses import collect
from spectra.store import AuditLog, OncallOverride
from spectra.tokens import Purpose, Tokens
from tests.factories.alerting import BOB_EMAIL, START, make_world
from tests.factories.oncall import ONCALL_ADA, ONCALL_GUS, ONCALL_UMA
from tests.support.databases import sqlite_only

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # ada's week (from 09:00)
TOKENS = Tokens("oncall-test-key")


def take(
    sessions: sessionmaker[Session], who: Principal, until: str, *, contact: str | None = None, now: datetime = NOW
) -> int:
    with sessions.begin() as session:
        row = service.take_override(
            session, who, "acme", "primary", until=until, contact=contact, reason="dentist", actor=Actor.of(who),
            now=now,
        )  # fmt: skip
        return row.id


def overrides(sessions: sessionmaker[Session]) -> list[tuple[str, datetime, datetime | None]]:
    with sessions() as session:
        rows = session.scalars(select(OncallOverride).order_by(OncallOverride.id))
        return [(row.contact_name, row.ends_at, row.cancelled_at) for row in rows]


def test_an_override_wins_for_its_time_and_shows_in_the_timeline(
    sessions: sessionmaker[Session], people: dict[str, Principal]
) -> None:
    uma = people[ONCALL_UMA]
    override_id = take(sessions, uma, "18:00")  # uma's own Contact by default (e-mail matched case-insensitively)
    with sessions() as session:
        [now] = [s for s in service.schedules_now(session, uma, now=NOW) if s.namespace == "acme"]
        found = service.schedule_timeline(session, uma, "acme", "primary", start=NOW)
    assert [p.name for p in now.on_call] == ["uma"]
    assert now.next_handoff == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    assert [(o.id, o.contact.name, o.taken_by, o.reason, o.cancellable) for o in now.overrides] == [
        (override_id, "uma", ONCALL_UMA, "dentist", True)
    ]
    assert [(s.start, s.end, s.contact.name if s.contact else None, s.override, s.mine) for s in found.shifts] == [
        (NOW, datetime(2026, 3, 2, 18, 0, tzinfo=UTC), "uma", "stored", True),
        (datetime(2026, 3, 2, 18, 0, tzinfo=UTC), datetime(2026, 3, 9, 9, 0, tzinfo=UTC), "ada", None, False),
        (datetime(2026, 3, 9, 9, 0, tzinfo=UTC), datetime(2026, 3, 16, 9, 0, tzinfo=UTC), "uma", None, True),
        (datetime(2026, 3, 16, 9, 0, tzinfo=UTC), NOW + timedelta(days=14), "ada", None, False),
    ]
    assert found.my_contact == "uma"


def test_expired_and_cancelled_overrides_decide_nothing(
    sessions: sessionmaker[Session], people: dict[str, Principal]
) -> None:
    ada, uma = people[ONCALL_ADA], people[ONCALL_UMA]
    first = take(sessions, uma, "1h")
    with sessions() as session:
        later = service.schedules_now(session, uma, now=NOW + timedelta(hours=1))
    assert [p.name for p in later[0].on_call] == ["ada"]  # expired at its end
    assert later[0].overrides == []
    second = take(sessions, uma, "2h")
    stranger = Principal(user_id=ada.user_id + 100, email="x@acme.example", organization="acme", role=uma.role)
    with sessions.begin() as session, pytest.raises(policy.Forbidden, match=service.CANCEL_OTHERS):
        service.cancel_override(session, stranger, "acme", "primary", second, actor=Actor.of(uma), now=NOW)
    with sessions.begin() as session:
        service.cancel_override(session, ada, "acme", "primary", second, actor=Actor.of(ada), now=NOW)  # an admin
    with sessions() as session:
        [now] = [
            s for s in service.schedules_now(session, uma, now=NOW + timedelta(minutes=90)) if s.namespace == "acme"
        ]
        audit = session.execute(select(AuditLog.action, AuditLog.actor, AuditLog.details).order_by(AuditLog.id)).all()
    assert [p.name for p in now.on_call] == ["ada"]  # the second would count until +2h, had it not been cancelled
    assert [(a, who, d["override"]) for a, who, d in audit if a.startswith("oncall.")] == [
        ("oncall.override_taken", ONCALL_UMA, first),
        ("oncall.override_taken", ONCALL_UMA, second),
        ("oncall.override_cancelled", ONCALL_ADA, second),
    ]
    with sessions.begin() as session, pytest.raises(policy.NotFound):
        service.cancel_override(
            session, ada, "acme", "primary", first, actor=Actor.of(ada), now=NOW + timedelta(hours=3)
        )


@pytest.mark.parametrize(
    ("until", "sentence"),
    [
        ("soon", "until 'soon' is neither a time of day (18:00), a duration (90m, 2h, 1d) nor a time with an offset "
                 "(2026-03-02T18:00+01:00)"),
        ("2026-03-02T18:00", "until '2026-03-02T18:00' has no offset; add one, e.g. +01:00 or Z"),
        ("2026-03-02T09:00Z", "until 2026-03-02T09:00:00Z is not in the future (now: 2026-03-02T10:00:00Z)"),
        ("40d", "until 2026-04-11T10:00:00Z is more than 31 days ahead"),
    ],
)  # fmt: skip
def test_bad_until_is_refused_and_nothing_is_stored(
    sessions: sessionmaker[Session], people: dict[str, Principal], until: str, sentence: str
) -> None:
    with pytest.raises(service.OncallRefused) as refused:
        take(sessions, people[ONCALL_UMA], until)
    assert str(refused.value) == sentence
    assert overrides(sessions) == []


def test_a_clock_time_is_the_next_one_in_the_schedules_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert service.parse_until("18:00", now=NOW, zone=berlin) == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    assert service.parse_until("09:00", now=NOW, zone=berlin) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def test_contacts_and_tenants(sessions: sessionmaker[Session], people: dict[str, Principal]) -> None:
    gus = people[ONCALL_GUS]
    with sessions.begin() as session, pytest.raises(policy.NotFound):
        service.take_override(
            session, gus, "acme", "primary", until="1h", contact="gus", reason=None, actor=Actor.of(gus), now=NOW
        )
    with pytest.raises(service.OncallRefused, match="there is no Contact 'gus' in namespace acme"):
        take(sessions, people[ONCALL_ADA], "1h", contact="gus")
    with sessions() as session:
        assert [(s.namespace, s.name) for s in service.schedules_now(session, gus, now=NOW)] == [("globex", "primary")]
        with pytest.raises(policy.NotFound):
            service.schedule_timeline(session, gus, "acme", "primary", start=NOW)
    assert overrides(sessions) == []


ESCALATION = """
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: always}
spec:
  layers: [{name: all, participants: [bob], start: 2026-01-05}]
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary}
spec:
  steps:
    - delay: 0s
      targets: [{schedule: always}]
      channels: [email]
"""


def _override(sessions: sessionmaker[Session], contact: str, start: datetime, end: datetime) -> None:
    with sessions.begin() as session:
        session.add(
            OncallOverride(
                schedule_namespace="default", schedule_name="always", contact_namespace="default",
                contact_name=contact, user_id=None, taken_by="ops@example.com", starts_at=start, ends_at=end,
                created_at=start,
            )
        )  # fmt: skip


@sqlite_only
@pytest.mark.parametrize(("hours_left", "paged"), [(2, "email:alice@example.com"), (-1, BOB_EMAIL)])
async def test_a_stored_override_changes_who_the_alerter_pages_until_it_expires(
    sessions: sessionmaker[Session], hours_left: int, paged: str
) -> None:
    world = make_world(sessions)
    world.apply(ESCALATION)
    _override(sessions, "alice", START - timedelta(hours=3), START + timedelta(hours=hours_left))
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert world.idem_keys() == [f"incident:{incident.id}:step:0:repeat:0:{paged}"]


def test_the_operator_status_shows_a_stored_override(
    sessions: sessionmaker[Session], people: dict[str, Principal]
) -> None:
    take(sessions, people[ONCALL_UMA], "18:00")
    with sessions() as session:
        facts = collect(session, NOW, source=None)
        later = collect(session, NOW + timedelta(hours=9), source=None)
    assert facts[("Schedule", "acme", "primary")].merged() == {
        "onCallNow": ["uma"],
        "nextHandoff": "2026-03-02T18:00:00Z",
    }
    assert later[("Schedule", "acme", "primary")].merged() == {
        "onCallNow": ["ada"],
        "nextHandoff": "2026-03-09T09:00:00Z",
    }


def test_the_calendar_feed_lists_only_the_users_shifts(
    sessions: sessionmaker[Session], people: dict[str, Principal]
) -> None:
    uma = people[ONCALL_UMA]
    take(sessions, uma, "18:00")
    with sessions() as session:
        token = service.feed_token(session, TOKENS, uma)
        owner = service.feed_shifts(session, TOKENS, token, now=NOW)
    parsed = icalendar.Calendar.from_ical(ics(owner, now=NOW, host="spectra.example.test"))
    events = [(e.decoded("dtstart"), e.decoded("dtend"), str(e["summary"])) for e in parsed.walk("VEVENT")]
    assert events[:3] == [
        (NOW, datetime(2026, 3, 2, 18, 0, tzinfo=UTC), "On call: acme/primary (override)"),
        (datetime(2026, 3, 9, 9, 0, tzinfo=UTC), datetime(2026, 3, 16, 9, 0, tzinfo=UTC), "On call: acme/primary"),
        (datetime(2026, 3, 23, 9, 0, tzinfo=UTC), datetime(2026, 3, 30, 9, 0, tzinfo=UTC), "On call: acme/primary"),
    ]
    assert all(end <= NOW + timedelta(days=60) for _, end, _ in events)
    assert len(events) == 5  # uma's weeks in the next 60 days, never ada's or gus's
    with sessions() as session:
        for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), Tokens("other").make(
            Purpose.ONCALL_FEED, {"u": uma.user_id, "v": 0}
        )):  # fmt: skip
            with pytest.raises(service.FeedNotFound):
                service.feed_shifts(session, TOKENS, bad, now=NOW)
    with sessions.begin() as session:
        service.rotate_feed(session, uma, actor=Actor.of(uma), now=NOW)
    with sessions() as session:
        with pytest.raises(service.FeedNotFound):
            service.feed_shifts(session, TOKENS, token, now=NOW)
        assert (
            service.feed_shifts(session, TOKENS, service.feed_token(session, TOKENS, uma), now=NOW).email == ONCALL_UMA
        )
