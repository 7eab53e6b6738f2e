"""On-call queries and actions for the console and the JSON API: no HTTP, blocking (run in threads).

Every function takes the caller's principal and asks spectra.auth.policy: reading needs `oncall.read`,
taking or cancelling an override `oncall.override` in the schedule's namespace (another tenant's schedule,
or one that does not exist, is `policy.NotFound`). Cancelling someone else's override needs, besides,
`oncall.manage` (organization admins, and API tokens with the `admin` scope). What is refused as asked
raises `OncallRefused` with the sentence to show.

"My shifts" are the shifts of the Contacts, in the namespaces the viewer may see, whose inline `email`
is the viewer's e-mail address (Contacts whose address lives in a Secret are not matched).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.contact import ContactSpec
from spectra.api.durations import DurationError, parse_duration
from spectra.api.schedule import Override, ScheduleSpec
from spectra.auth import audit, policy
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.oncall import StoredOverride, next_handoff, on_call, resolved, timeline
from spectra.oncall.localtime import to_instant
from spectra.runtime.timefmt import rfc3339
from spectra.store import Membership, OncallFeed, OncallOverride, Resource, User, UserStatus
from spectra.store.oncall_overrides import OVERRIDE_REASON_LEN
from spectra.tokens import InvalidToken, Purpose, Tokens

# What decides a shift: the manifest's override ("spec"), one taken here ("stored"), or the layers (None).
Decider = Literal["spec", "stored"] | None

TIMELINE_DAYS: Final = 14  # the console's timeline, and the API's default
TIMELINE_DAYS_MAX: Final = 60
FEED_DAYS: Final = 60  # the calendar feed's reach
OVERRIDE_MAX: Final = timedelta(days=31)  # how far ahead an override may end
FEED_MAX_AGE_S: Final = 10 * 366 * 24 * 3600  # a feed URL lives until its version is rotated
_CLOCK: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")

CANCEL_OTHERS: Final = "only whoever took an override, or an organization admin, may cancel it"


class OncallRefused(ValueError):
    """What was asked cannot be done as asked: the message is the sentence to show (HTTP 400)."""


# --- what the pages and the API show ------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    display_name: str | None  # None: no such Contact


@dataclass(frozen=True)
class OverrideView:
    """A stored override still counting or to come."""

    id: int
    contact: Person
    start: datetime
    end: datetime
    taken_by: str
    reason: str | None
    created_at: datetime
    cancellable: bool  # by the viewer


@dataclass(frozen=True)
class ScheduleNow:
    namespace: str
    name: str
    time_zone: str
    description: str | None
    source: str
    on_call: list[Person]
    next_handoff: datetime | None
    overrides: list[OverrideView]


@dataclass(frozen=True)
class ShiftView:
    start: datetime
    end: datetime
    contact: Person | None  # None: nobody
    override: Decider  # "spec" (the manifest's), "stored" (taken here) or None (the layers)
    override_id: int | None
    mine: bool


@dataclass(frozen=True)
class Timeline:
    schedule: ScheduleNow
    start: datetime
    end: datetime
    shifts: list[ShiftView]
    contacts: list[Person]  # the namespace's Contacts, for the override form
    my_contact: str | None  # the viewer's Contact in the namespace


@dataclass(frozen=True)
class MyShift:
    namespace: str
    schedule: str
    start: datetime
    end: datetime
    contact: str
    override: Decider


@dataclass
class _Namespace:
    """One namespace's Schedules and Contacts, read once."""

    schedules: dict[str, Resource] = field(default_factory=dict)
    contacts: dict[str, ContactSpec] = field(default_factory=dict)

    def person(self, name: str) -> Person:
        contact = self.contacts.get(name)
        return Person(name, contact.display_name if contact is not None else None)

    def contacts_of(self, email: str) -> set[str]:
        return {
            name
            for name, contact in self.contacts.items()
            if contact.email is not None and contact.email.lower() == email.lower()
        }


def _read(
    session: Session, namespaces: policy.Namespaces, kinds: Sequence[str] = ("Schedule", "Contact")
) -> dict[str, _Namespace]:
    found: dict[str, _Namespace] = {}
    rows = session.scalars(
        select(Resource).where(Resource.kind.in_(kinds)).order_by(Resource.namespace, Resource.kind, Resource.name)
    )
    for row in rows:
        if row.namespace not in namespaces:
            continue
        where = found.setdefault(row.namespace, _Namespace())
        if row.kind == "Schedule":
            where.schedules[row.name] = row
        else:
            try:
                where.contacts[row.name] = ContactSpec.model_validate(row.spec)
            except ValidationError:
                continue
    return found


def _spec(row: Resource) -> ScheduleSpec | None:
    try:
        return ScheduleSpec.model_validate(row.spec)
    except (ValidationError, ValueError):
        return None


def _may_cancel_any(principal: Principal) -> bool:
    return policy.allowed(principal, Action.ONCALL_MANAGE, organization=principal.organization)


def _override_view(
    override: StoredOverride, row: OncallOverride | None, where: _Namespace, principal: Principal
) -> OverrideView:
    mine = row is not None and row.user_id == principal.user_id
    return OverrideView(
        id=override.id,
        contact=where.person(override.contact),
        start=override.start,
        end=override.end,
        taken_by=override.taken_by,
        reason=override.reason,
        created_at=row.created_at if row is not None else override.start,
        cancellable=mine or _may_cancel_any(principal),
    )


def _now_of(
    session: Session, principal: Principal, row: Resource, spec: ScheduleSpec, where: _Namespace, *, now: datetime
) -> tuple[ScheduleNow, ScheduleSpec]:
    schedule = resolved(session, row.namespace, row.name, spec, after=now)
    stored = [override for override in schedule.overrides if isinstance(override, StoredOverride)]
    rows = {
        found.id: found
        for found in session.scalars(select(OncallOverride).where(OncallOverride.id.in_([o.id for o in stored])))
    } if stored else {}  # fmt: skip
    view = ScheduleNow(
        namespace=row.namespace,
        name=row.name,
        time_zone=spec.time_zone,
        description=spec.description,
        source=row.source,
        on_call=[where.person(name) for name in on_call(schedule, now)],
        next_handoff=next_handoff(schedule, now),
        overrides=[_override_view(o, rows.get(o.id), where, principal) for o in stored],
    )
    return view, schedule


# --- reads ---------------------------------------------------------------------------------------------


def schedules_now(session: Session, principal: Principal, *, now: datetime) -> list[ScheduleNow]:
    """Every schedule the principal may see, by namespace and name, with who is on call now."""
    policy.require(principal, Action.ONCALL_READ, organization=principal.organization)
    found: list[ScheduleNow] = []
    for where in _read(session, policy.visible_namespaces(session, principal)).values():
        for row in where.schedules.values():
            spec = _spec(row)
            if spec is not None:
                found.append(_now_of(session, principal, row, spec, where, now=now)[0])
    return found


def _schedule_in(
    session: Session, principal: Principal, action: Action, namespace: str, name: str
) -> tuple[Resource, ScheduleSpec, _Namespace]:
    policy.require_in(session, principal, action, namespace=namespace)
    where = _read(session, frozenset({namespace})).get(namespace)
    row = where.schedules.get(name) if where is not None else None
    spec = _spec(row) if row is not None else None
    if where is None or row is None or spec is None:
        raise policy.NotFound()
    return row, spec, where


def _shift_view(shift: Any, where: _Namespace, mine: set[str]) -> ShiftView:
    override: Override | None = shift.override
    kind: Decider = None if override is None else ("stored" if isinstance(override, StoredOverride) else "spec")
    return ShiftView(
        start=shift.start,
        end=shift.end,
        contact=where.person(shift.contact) if shift.contact is not None else None,
        override=kind,
        override_id=override.id if isinstance(override, StoredOverride) else None,
        mine=shift.contact in mine,
    )


def schedule_timeline(
    session: Session, principal: Principal, namespace: str, name: str, *, start: datetime, days: int = TIMELINE_DAYS
) -> Timeline:
    """Who is on call in `namespace/name` from `start` for `days` days, shift by shift."""
    row, spec, where = _schedule_in(session, principal, Action.ONCALL_READ, namespace, name)
    now_view, schedule = _now_of(session, principal, row, spec, where, now=start)
    end = start + timedelta(days=days)
    mine = where.contacts_of(principal.email)
    return Timeline(
        schedule=now_view,
        start=start,
        end=end,
        shifts=[_shift_view(shift, where, mine) for shift in timeline(schedule, start, end)],
        contacts=[where.person(contact) for contact in sorted(where.contacts)],
        my_contact=min(mine) if mine else None,
    )


def _shifts_of(
    session: Session, namespaces: dict[str, _Namespace], email: str, start: datetime, end: datetime
) -> list[MyShift]:
    found: list[MyShift] = []
    for namespace, where in namespaces.items():
        mine = where.contacts_of(email)
        if not mine:
            continue
        for row in where.schedules.values():
            spec = _spec(row)
            if spec is None:
                continue
            schedule = resolved(session, namespace, row.name, spec, after=start)
            for shift in timeline(schedule, start, end):
                if shift.contact in mine:
                    view = _shift_view(shift, where, mine)
                    found.append(MyShift(namespace, row.name, shift.start, shift.end, shift.contact, view.override))
    found.sort(key=lambda shift: (shift.start, shift.namespace, shift.schedule))
    return found


def my_shifts(session: Session, principal: Principal, *, start: datetime, days: int = TIMELINE_DAYS) -> list[MyShift]:
    """The principal's own shifts from `start` for `days` days, in every schedule it may see."""
    policy.require(principal, Action.ONCALL_READ, organization=principal.organization)
    namespaces = _read(session, policy.visible_namespaces(session, principal))
    return _shifts_of(session, namespaces, principal.email, start, start + timedelta(days=days))


# --- overrides -----------------------------------------------------------------------------------------


def parse_until(text: str, *, now: datetime, zone: ZoneInfo) -> datetime:
    """When an override ends, as people write it: a clock time in the schedule's zone (`18:00`, the next
    one to come), a duration from now (`90m`, `2h`, `1d`) or an ISO 8601 time with an offset."""
    value = text.strip()
    clock = _CLOCK.fullmatch(value)
    if clock is not None:
        local = now.astimezone(zone)
        wall = local.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0, tzinfo=None)
        until = to_instant(wall, zone)
        if until <= now:
            until = to_instant(wall + timedelta(days=1), zone)
    else:
        try:
            until = now + parse_duration(value, calendar_units=True)
        except DurationError:
            try:
                until = datetime.fromisoformat(value)
            except ValueError:
                raise OncallRefused(
                    f"until {text!r} is neither a time of day (18:00), a duration (90m, 2h, 1d) nor a time "
                    "with an offset (2026-03-02T18:00+01:00)"
                ) from None
            if until.tzinfo is None or until.utcoffset() is None:
                raise OncallRefused(f"until {text!r} has no offset; add one, e.g. +01:00 or Z") from None
    if until <= now:
        raise OncallRefused(f"until {rfc3339(until)} is not in the future (now: {rfc3339(now)})")
    if until - now > OVERRIDE_MAX:
        raise OncallRefused(f"until {rfc3339(until)} is more than {OVERRIDE_MAX.days} days ahead")
    return until


def _clean_reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    text = reason.strip()
    if len(text) > OVERRIDE_REASON_LEN:
        raise OncallRefused(f"the reason is longer than {OVERRIDE_REASON_LEN} characters")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise OncallRefused("the reason contains control characters")
    return text


def take_override(
    session: Session,
    principal: Principal,
    namespace: str,
    name: str,
    *,
    until: str,
    contact: str | None,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> OncallOverride:
    """`contact` (default: the principal's own Contact in the namespace) on call in `namespace/name` from
    now until `until`; audited as `oncall.override_taken`."""
    _, spec, where = _schedule_in(session, principal, Action.ONCALL_OVERRIDE, namespace, name)
    ends = parse_until(until, now=now, zone=ZoneInfo(spec.time_zone))
    text = _clean_reason(reason)
    if contact is None or not contact.strip():
        mine = where.contacts_of(principal.email)
        if not mine:
            raise OncallRefused(
                f"no Contact in namespace {namespace} has your e-mail address ({principal.email}); name the contact"
            )
        who = min(mine)
    else:
        who = contact.strip()
        if who not in where.contacts:
            raise OncallRefused(f"there is no Contact {who!r} in namespace {namespace}")
    override = OncallOverride(
        schedule_namespace=namespace,
        schedule_name=name,
        contact_namespace=namespace,
        contact_name=who,
        user_id=principal.user_id,
        taken_by=principal.email,
        starts_at=now,
        ends_at=ends,
        reason=text,
        created_at=now,
    )
    session.add(override)
    session.flush()
    audit.record(
        session,
        actor,
        "oncall.override_taken",
        now=now,
        target=("Schedule", namespace, name),
        details={"override": override.id, "contact": who, "until": rfc3339(ends), "reason": text or ""},
    )
    return override


def cancel_override(
    session: Session, principal: Principal, namespace: str, name: str, override_id: int, *, actor: Actor, now: datetime
) -> OncallOverride:
    """End override `override_id` of `namespace/name` now (its row stays, marked cancelled); audited as
    `oncall.override_cancelled`. An unknown, cancelled or expired override is NotFound."""
    _schedule_in(session, principal, Action.ONCALL_OVERRIDE, namespace, name)
    override = session.scalars(
        select(OncallOverride)
        .where(
            OncallOverride.id == override_id,
            OncallOverride.schedule_namespace == namespace,
            OncallOverride.schedule_name == name,
        )
        .with_for_update()
    ).one_or_none()
    if override is None or override.cancelled_at is not None or override.ends_at <= now:
        raise policy.NotFound()
    if override.user_id != principal.user_id and not _may_cancel_any(principal):
        raise policy.Forbidden(CANCEL_OTHERS)
    override.cancelled_at = now
    override.cancelled_by = principal.email
    session.flush()
    audit.record(
        session,
        actor,
        "oncall.override_cancelled",
        now=now,
        target=("Schedule", namespace, name),
        details={"override": override.id, "contact": override.contact_name, "taken_by": override.taken_by},
    )
    return override


# --- the calendar feed ---------------------------------------------------------------------------------


def feed_version(session: Session, user_id: int) -> int:
    row = session.get(OncallFeed, user_id)
    return 0 if row is None else row.version


def feed_token(session: Session, tokens: Tokens, principal: Principal) -> str:
    """The signed token of the principal's calendar URL (names the user and the feed's version)."""
    return tokens.make(Purpose.ONCALL_FEED, {"u": principal.user_id, "v": feed_version(session, principal.user_id)})


def rotate_feed(session: Session, principal: Principal, *, actor: Actor, now: datetime) -> None:
    """A new version of the principal's calendar URL: every URL handed out before stops working. Audited."""
    policy.require(principal, Action.ONCALL_READ, organization=principal.organization)
    row = session.get(OncallFeed, principal.user_id, with_for_update=True)
    if row is None:
        row = OncallFeed(user_id=principal.user_id, version=0, rotated_at=now)
        session.add(row)
    row.version += 1
    row.rotated_at = now
    session.flush()
    audit.record(session, actor, "oncall.feed_rotated", now=now, target=("User", None, principal.email))


class FeedNotFound(Exception):
    """The token is tampered, of another purpose or version, or its user cannot sign in any more."""


@dataclass(frozen=True)
class FeedOwner:
    email: str
    shifts: list[MyShift]


def feed_shifts(session: Session, tokens: Tokens, token: str, *, now: datetime, days: int = FEED_DAYS) -> FeedOwner:
    """The shifts of the feed token's user from `now` for `days` days, in every organization they belong to."""
    try:
        payload = tokens.read(Purpose.ONCALL_FEED, token, max_age_s=FEED_MAX_AGE_S)
    except InvalidToken:
        raise FeedNotFound from None
    user_id, version = payload.get("u"), payload.get("v")
    if not isinstance(user_id, int) or not isinstance(version, int):
        raise FeedNotFound
    user = session.get(User, user_id)
    if user is None or user.status != UserStatus.ACTIVE or feed_version(session, user_id) != version:
        raise FeedNotFound
    organizations = session.scalars(select(Membership.organization).where(Membership.user_id == user_id))
    namespaces: set[str] = set()
    for organization in organizations:
        owned = policy.namespaces_of(session, organization)
        if isinstance(owned, policy.AllNamespaces):
            namespaces.update(_all_namespaces(session))
        else:
            namespaces.update(owned)
    read = _read(session, frozenset(namespaces))
    return FeedOwner(user.email, _shifts_of(session, read, user.email, now, now + timedelta(days=days)))


def _all_namespaces(session: Session) -> Iterable[str]:
    return session.scalars(select(Resource.namespace).where(Resource.kind.in_(("Schedule", "Contact"))).distinct())
