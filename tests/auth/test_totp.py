"""TOTP and recovery codes: enrolment with codes computed by pyotp from the shown secret, a code good once
per time step within one step of drift, single-use recovery codes, resets, and every refusal leaving the
store as it was (SQLite and MariaDB)."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import segno
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import totp
from spectra.auth.audit import AuditFilter, query
from spectra.auth.identity import Actor
from spectra.auth.totp import MfaRefused
from spectra.store.accounts import AuditLog, RecoveryCode, User

T0 = datetime(2026, 12, 7, 9, 0, 10, tzinfo=UTC)  # 10 s into a time step
STEP = timedelta(seconds=30)
LATER = T0 + timedelta(minutes=5)
KEY = "test-secret-key-for-totp"
ADMIN = Actor(name="admin@acme.example", user_id=99, organization="acme")
NOT_VALID = "that code is not valid: enter the 6-digit code your authenticator app shows now"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", KEY)
    return KEY


@pytest.fixture
def user(session: Session) -> User:
    alice = User(email="alice@acme.example")
    session.add_all([alice, User(email="bob@acme.example")])
    session.commit()
    return alice


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]

    def code(self, at: datetime) -> str:
        return pyotp.TOTP(self.secret).at(at)


def enrol(session: Session, user: User, at: datetime = T0) -> Enrolled:
    """Enrol as a person would: type the shown secret into an app, confirm with its current code."""
    enrolment = totp.begin_enrolment(session, user, now=at)
    secret = enrolment.secret_text.replace(" ", "")
    codes = totp.confirm_enrolment(session, user, pyotp.TOTP(secret).at(at), now=at)
    session.commit()
    return Enrolled(secret, codes)


def snapshot(session: Session) -> list[tuple[Any, ...]]:
    """Every row the module may touch, as the caller's transaction would commit them."""
    session.flush()
    rows: list[tuple[Any, ...]] = []
    for model in (User, RecoveryCode, AuditLog):
        table = model.__table__
        rows += [(model.__name__, *row) for row in session.execute(select(table).order_by(*table.primary_key))]
    return rows


def wrong_code(secret: str, at: datetime) -> str:
    """A well-formed code that no step near `at` has."""
    near = {pyotp.TOTP(secret).at(at + k * STEP) for k in range(-3, 4)}
    return next(c for c in (f"{(int(min(near)) + n) % 1_000_000:06d}" for n in range(1, 20)) if c not in near)


def exactly(message: str) -> str:
    """A `match=` pattern for this message and nothing else."""
    return f"^{re.escape(message)}$"


def actions(session: Session) -> list[str]:
    return [row.action for row in reversed(query(session, AuditFilter()))]


# --- enrolment ---------------------------------------------------------------------------------


def test_enrolment_shows_the_secret_three_ways_and_keeps_it_sealed(session: Session, user: User) -> None:
    enrolment = totp.begin_enrolment(session, user, now=T0)
    session.commit()

    uri = urlsplit(enrolment.uri)
    params = parse_qs(uri.query)
    secret = params["secret"][0]
    assert (uri.scheme, uri.netloc, unquote(uri.path)) == ("otpauth", "totp", "/SpectraMonitor:alice@acme.example")
    assert params["issuer"] == ["SpectraMonitor"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", enrolment.secret_text)
    assert enrolment.secret_text.replace(" ", "") == secret

    # At rest: sealed, so neither the ORM value nor the raw column holds the secret.
    raw = session.execute(select(User.__table__.c.mfa_secret).where(User.__table__.c.id == user.id)).scalar_one()
    assert raw is not None
    assert secret not in raw
    assert secret.lower() not in raw.lower()
    assert (user.mfa_enabled, user.mfa_last_step, totp.recovery_codes_left(session, user)) == (False, None, 0)
    assert totp.readable(user)
    assert not totp.verify(session, user, pyotp.TOTP(secret).at(T0), now=T0)  # not on until confirmed
    assert actions(session) == []


def test_a_second_enrolment_replaces_the_pending_secret(session: Session, user: User) -> None:
    first = totp.begin_enrolment(session, user, now=T0)
    second = totp.begin_enrolment(session, user, now=T0)
    assert first.secret_text != second.secret_text
    old_code = pyotp.TOTP(first.secret_text.replace(" ", "")).at(T0)
    with pytest.raises(MfaRefused, match=exactly(NOT_VALID)):
        totp.confirm_enrolment(session, user, old_code, now=T0)
    assert len(totp.confirm_enrolment(session, user, pyotp.TOTP(second.secret_text.replace(" ", "")).at(T0), now=T0))


def _svg_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules an SVG of segno's form draws: one path of unit-wide horizontal strokes."""
    root = ET.fromstring(svg)
    dark = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("stroke")]
    assert len(dark) == 1
    cells: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, a, b in re.findall(r"([MmHh])(-?[\d.]+)(?: (-?[\d.]+))?", dark[0].get("d", "")):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:
            length = float(a)
            cells |= {(int(x) + i, int(y)) for i in range(int(length))}
            x += length
    return cells


def test_the_qr_code_is_the_uri_as_plain_svg(session: Session, user: User) -> None:
    enrolment = totp.begin_enrolment(session, user, now=T0)
    svg = enrolment.qr_svg

    root = ET.fromstring(svg)  # well-formed, and nothing outside the one <svg> element
    svg_ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg_ns}svg"
    assert {element.tag for element in root.iter()} <= {f"{svg_ns}{tag}" for tag in ("svg", "title", "g", "path")}
    for element in root.iter():
        for name, value in element.attrib.items():
            assert "href" not in name
            assert not name.lower().startswith("on"), name
            assert "url(" not in value
            assert "://" not in value
            assert "javascript" not in value.lower()
    assert "<script" not in svg.lower()
    assert "<!" not in svg  # no DOCTYPE or entity declarations
    assert root.findtext(f"{svg_ns}title") == totp.QR_TITLE

    border = 4
    expected = segno.make(enrolment.uri, error="m", micro=False)
    dark = {
        (col + border, row + border)
        for row, line in enumerate(expected.matrix)
        for col, module in enumerate(line)
        if module
    }
    assert _svg_modules(svg) == dark


def test_confirming_turns_mfa_on_with_ten_recovery_codes(session: Session, user: User) -> None:
    enrolled = enrol(session, user)

    assert user.mfa_enabled
    assert len(enrolled.recovery_codes) == len(set(enrolled.recovery_codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{5}-[a-z2-7]{5}", code) for code in enrolled.recovery_codes)
    assert totp.recovery_codes_left(session, user) == 10
    assert actions(session) == ["mfa.enrolled"]
    entry = query(session, AuditFilter())[0]
    assert (entry.actor, entry.actor_user_id, entry.target_kind, entry.target_name) == (
        "alice@acme.example",
        user.id,
        "User",
        "alice@acme.example",
    )
    # Stored as keyed digests: neither the code nor its plain SHA-256 is in the table.
    stored = set(session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)))
    for code in enrolled.recovery_codes:
        plain = code.replace("-", "")
        assert not {plain, code, hashlib.sha256(plain.encode()).hexdigest()} & stored
    # The confirming code's step is used up: the same code cannot sign in right after.
    assert not totp.verify(session, user, enrolled.code(T0), now=T0)


@dataclass(frozen=True)
class ConfirmRefusal:
    id: str
    code: str | None  # None: the current code of the pending secret; "wrong", "two-steps-ago" computed
    message: str
    begin: bool = True
    already_on: bool = False


CONFIRM_REFUSALS = [
    ConfirmRefusal("wrong-code", "wrong", NOT_VALID),
    ConfirmRefusal("two-steps-ago", "two-steps-ago", NOT_VALID),
    ConfirmRefusal("empty", "", NOT_VALID),
    ConfirmRefusal("five-digits", "12345", NOT_VALID),
    ConfirmRefusal("letters", "abcdef", NOT_VALID),
    ConfirmRefusal("a-recovery-code-form", "abcde-fghij", NOT_VALID),
    ConfirmRefusal("1000-chars", "1" * 1000, NOT_VALID),
    ConfirmRefusal("not-started", None, "no two-factor enrolment has been started", begin=False),
    ConfirmRefusal("already-on", None, "two-factor authentication is already on", already_on=True),
]


@pytest.mark.parametrize("case", CONFIRM_REFUSALS, ids=lambda c: c.id)
def test_confirm_refusals_change_nothing(session: Session, user: User, case: ConfirmRefusal) -> None:
    secret = ""
    if case.already_on:
        secret = enrol(session, user).secret
    elif case.begin:
        secret = totp.begin_enrolment(session, user, now=T0).secret_text.replace(" ", "")
        session.commit()
    code = case.code
    if code is None:
        code = pyotp.TOTP(secret).at(LATER) if secret else "123456"
    elif code == "wrong":
        code = wrong_code(secret, LATER)
    elif code == "two-steps-ago":
        code = pyotp.TOTP(secret).at(LATER - 2 * STEP)
    before = snapshot(session)

    with pytest.raises(MfaRefused, match=exactly(case.message)):
        totp.confirm_enrolment(session, user, code, now=LATER)

    assert snapshot(session) == before


def test_enrolling_again_while_on_is_refused(session: Session, user: User) -> None:
    enrol(session, user)
    before = snapshot(session)
    with pytest.raises(
        MfaRefused,
        match=exactly("two-factor authentication is already on: turn it off before enrolling another device"),
    ):
        totp.begin_enrolment(session, user, now=LATER)
    assert snapshot(session) == before


# --- verification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code_at", "accepted"),
    [
        pytest.param(LATER, True, id="current-step"),
        pytest.param(LATER - STEP, True, id="one-step-behind"),
        pytest.param(LATER + STEP, True, id="one-step-ahead"),
        pytest.param(LATER - 2 * STEP, False, id="two-steps-ago"),
        pytest.param(LATER + 2 * STEP, False, id="two-steps-ahead"),
        pytest.param(T0, False, id="the-confirming-code-again"),
    ],
)
def test_totp_window(session: Session, user: User, code_at: datetime, accepted: bool) -> None:
    enrolled = enrol(session, user)
    before = snapshot(session)

    assert totp.verify(session, user, enrolled.code(code_at), now=LATER) is accepted

    if accepted:
        step = pyotp.TOTP(enrolled.secret).timecode(code_at)
        assert user.mfa_last_step == step
        session.commit()
        assert session.scalar(select(User.mfa_last_step).where(User.id == user.id)) == step
        assert actions(session) == ["mfa.enrolled"]  # a TOTP sign-in is the session module's to audit
    else:
        assert snapshot(session) == before


@pytest.mark.parametrize(
    ("code_at", "now"),
    [
        pytest.param(LATER, LATER, id="same-code-same-step"),
        pytest.param(LATER, LATER + timedelta(seconds=15), id="same-code-later-in-its-step"),
        pytest.param(LATER - STEP, LATER, id="an-earlier-step-inside-the-window"),
    ],
)
def test_a_step_is_accepted_once(session: Session, user: User, code_at: datetime, now: datetime) -> None:
    enrolled = enrol(session, user)
    assert totp.verify(session, user, enrolled.code(LATER), now=LATER)
    session.commit()
    before = snapshot(session)

    assert not totp.verify(session, user, enrolled.code(code_at), now=now)

    assert snapshot(session) == before
    assert totp.verify(session, user, enrolled.code(LATER + STEP), now=LATER + STEP)  # the next step works


def test_two_requests_racing_with_one_code_one_wins(sessions: sessionmaker[Session]) -> None:
    with sessions() as setup:
        alice = User(email="alice@acme.example")
        setup.add(alice)
        setup.commit()
        enrolled = enrol(setup, alice)
        user_id = alice.id
    code = enrolled.code(LATER)
    with sessions() as first, sessions() as second:
        # Both requests read the user before either accepts: each copy says the step is unused.
        first_copy = first.get_one(User, user_id)
        second_copy = second.get_one(User, user_id)
        second.commit()  # end its read (SQLite holds a shared lock while a transaction reads)
        assert totp.verify(first, first_copy, code, now=LATER)
        first.commit()

        assert not totp.verify(second, second_copy, code, now=LATER)
        assert not second.dirty
        assert not second.new
        second.rollback()
    with sessions() as check:
        assert check.scalar(select(User.mfa_last_step).where(User.id == user_id)) == pyotp.TOTP(
            enrolled.secret
        ).timecode(LATER)


def test_spaces_and_dashes_are_ignored(session: Session, user: User) -> None:
    enrolled = enrol(session, user)
    code = enrolled.code(LATER)
    assert totp.verify(session, user, f" {code[:3]} {code[3:]} ", now=LATER)
    next_code = enrolled.code(LATER + STEP)
    assert totp.verify(session, user, f"{next_code[:3]}-{next_code[3:]}", now=LATER + STEP)


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("12345", id="five-digits"),
    pytest.param("1234567", id="seven-digits"),
    pytest.param("abcdef", id="letters"),
    pytest.param("12345a", id="digits-and-a-letter"),
    pytest.param("١٢٣٤٥٦", id="arabic-indic-digits"),
    pytest.param("\uff11\uff12\uff13\uff14\uff15\uff16", id="fullwidth-digits"),
    pytest.param("1" * 1000, id="1000-digits"),
    pytest.param("a" * 1000, id="1000-letters"),
    pytest.param("abcde-fghi", id="recovery-nine-chars"),
    pytest.param("abcde-fghij1", id="recovery-eleven-chars"),
    pytest.param("abcde-fgh0j", id="recovery-not-base32"),
    pytest.param("123456\x00", id="nul"),
    pytest.param("12_34_56", id="underscores"),
]


@pytest.mark.parametrize("code", MALFORMED)
def test_malformed_input_is_refused_and_changes_nothing(session: Session, user: User, code: str) -> None:
    enrol(session, user)
    before = snapshot(session)
    assert not totp.verify(session, user, code, now=LATER)
    assert snapshot(session) == before


def test_wrong_code_and_mfa_off_are_refused(session: Session, user: User) -> None:
    enrolled = enrol(session, user)
    before = snapshot(session)
    assert not totp.verify(session, user, wrong_code(enrolled.secret, LATER), now=LATER)
    assert snapshot(session) == before

    bob = session.scalars(select(User).where(User.email == "bob@acme.example")).one()
    assert not totp.verify(session, bob, enrolled.code(LATER), now=LATER)  # no MFA: nothing to verify
    assert not totp.verify(session, bob, enrolled.recovery_codes[0], now=LATER)
    assert snapshot(session) == before


# --- recovery codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda c: c, id="as-shown"),
        pytest.param(lambda c: c.upper(), id="upper-case"),
        pytest.param(lambda c: c.replace("-", ""), id="without-dash"),
        pytest.param(lambda c: f"  {c.replace('-', ' ')}  ", id="with-spaces"),
    ],
)
def test_a_recovery_code_works_once(session: Session, user: User, form: Any) -> None:
    enrolled = enrol(session, user)
    code = enrolled.recovery_codes[3]

    assert totp.verify(session, user, form(code), now=LATER)
    session.commit()
    assert totp.recovery_codes_left(session, user) == 9
    assert actions(session) == ["mfa.enrolled", "mfa.recovery_code_used"]
    assert query(session, AuditFilter())[0].details == {"left": 9}
    before = snapshot(session)

    assert not totp.verify(session, user, code, now=LATER + STEP)  # used up

    assert snapshot(session) == before
    assert totp.verify(session, user, enrolled.recovery_codes[4], now=LATER + STEP)  # the others still work


def test_a_recovery_code_is_good_for_its_own_account_only(session: Session, user: User) -> None:
    enrolled = enrol(session, user)
    bob = session.scalars(select(User).where(User.email == "bob@acme.example")).one()
    enrol(session, bob)
    before = snapshot(session)
    assert not totp.verify(session, bob, enrolled.recovery_codes[0], now=LATER)
    assert snapshot(session) == before


def test_regenerating_replaces_every_recovery_code(session: Session, user: User) -> None:
    enrolled = enrol(session, user)
    assert totp.verify(session, user, enrolled.recovery_codes[0], now=LATER)

    fresh = totp.regenerate_recovery_codes(session, user, now=LATER)
    session.commit()

    assert len(set(fresh)) == 10
    assert not set(fresh) & set(enrolled.recovery_codes)
    assert totp.recovery_codes_left(session, user) == 10
    assert session.scalar(select(RecoveryCode.id).where(RecoveryCode.used_at.is_not(None))) is None
    assert actions(session)[-1] == "mfa.recovery_codes_regenerated"
    before = snapshot(session)
    assert not totp.verify(session, user, enrolled.recovery_codes[1], now=LATER)
    assert snapshot(session) == before
    assert totp.verify(session, user, fresh[1], now=LATER)


def test_regenerating_without_mfa_is_refused(session: Session, user: User) -> None:
    totp.begin_enrolment(session, user, now=T0)
    session.commit()
    before = snapshot(session)
    with pytest.raises(MfaRefused, match=exactly("two-factor authentication is not on")):
        totp.regenerate_recovery_codes(session, user, now=T0)
    assert snapshot(session) == before


# --- reset, disable, another key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("clear", "actor", "action"),
    [
        pytest.param(totp.reset, ADMIN, "mfa.reset", id="admin-reset"),
        pytest.param(totp.disable, Actor(name="alice@acme.example", user_id=1), "mfa.disabled", id="user-disable"),
    ],
)
def test_reset_and_disable_clear_everything(
    session: Session, user: User, clear: Any, actor: Actor, action: str
) -> None:
    enrolled = enrol(session, user)
    assert totp.verify(session, user, enrolled.code(LATER), now=LATER)

    assert clear(session, user, actor, now=LATER) is True
    session.commit()

    row = session.execute(select(User.__table__).where(User.__table__.c.id == user.id)).one()
    assert (row.mfa_secret, row.mfa_enabled, row.mfa_last_step) == (None, False, None)
    assert session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []
    entry = query(session, AuditFilter())[0]
    assert (entry.action, entry.actor, entry.target_name, entry.details) == (
        action,
        actor.name,
        "alice@acme.example",
        {"was_enabled": True},
    )
    before = snapshot(session)
    assert not totp.verify(session, user, enrolled.code(LATER + STEP), now=LATER + STEP)
    assert not totp.verify(session, user, enrolled.recovery_codes[0], now=LATER + STEP)
    assert snapshot(session) == before

    enrol(session, user, LATER + 2 * STEP)  # and the user can enrol again
    assert user.mfa_enabled


def test_resetting_a_user_without_mfa_records_nothing(session: Session, user: User) -> None:
    before = snapshot(session)
    assert totp.reset(session, user, ADMIN, now=T0) is False
    assert snapshot(session) == before


def test_a_pending_enrolment_is_cleared_by_a_reset(session: Session, user: User) -> None:
    totp.begin_enrolment(session, user, now=T0)
    assert totp.reset(session, user, ADMIN, now=T0) is True
    assert (user.mfa_secret, user.mfa_enabled) == (None, False)
    assert query(session, AuditFilter())[0].details == {"was_enabled": False}


def test_under_another_secret_key_nothing_verifies_until_a_reset(
    session: Session, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = enrol(session, user)
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "a-different-key")
    before = snapshot(session)

    assert not totp.readable(user)
    assert not totp.verify(session, user, enrolled.code(LATER), now=LATER)
    assert not totp.verify(session, user, enrolled.recovery_codes[0], now=LATER)
    assert snapshot(session) == before

    assert totp.reset(session, user, ADMIN, now=LATER)
    again = enrol(session, user, LATER)
    assert totp.readable(user)
    assert totp.verify(session, user, again.code(LATER + STEP), now=LATER + STEP)
