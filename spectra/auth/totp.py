"""Two-factor authentication: TOTP (RFC 6238) and single-use recovery codes.

- Enrolment makes a random secret, keeps it sealed in `User.mfa_secret` (Fernet with a key derived from
  SPECTRA_SECRET_KEY, spectra.store.sealing) and shows it three ways: an otpauth:// URI, the secret as text
  in groups of four, and a QR code as SVG made here (no script, no external reference). MFA is on only once
  a first code confirmed that the authenticator app has the secret.
- A code is accepted for the current 30-second step or one step either side (clock drift), and each step
  only once (RFC 6238 section 5.2): `User.mfa_last_step` moves forward by a guarded UPDATE, so two requests
  racing with one code cannot both win.
- Ten recovery codes are made at confirmation, shown once and kept as HMAC-SHA256 digests under a key
  derived from SPECTRA_SECRET_KEY (a copied table alone cannot be searched: 50 random bits each, and the
  key is not in the database). Each works once.
- A secret sealed under another key (SPECTRA_SECRET_KEY changed, or unset across a restart) cannot be
  read: such a user's codes are refused until an admin resets their MFA and they enrol again.

Functions flush and never commit: the caller owns the transaction. Who may call what (no MFA change
while impersonating, only admins reset others) is the policy module's decision.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyotp
import segno
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from spectra.auth import audit
from spectra.auth.identity import Actor
from spectra.store.accounts import RecoveryCode, User
from spectra.store.sealing import SEALED, seal, sealing_secret, unseal

ISSUER: Final = "SpectraMonitor"
SECRET_LENGTH: Final = 32  # base32 characters: 160 bits, the HMAC-SHA1 block RFC 4226 recommends
DIGITS: Final = 6
STEP_SECONDS: Final = 30
DRIFT_STEPS: Final = 1  # one step either side: a phone clock a little off, a code typed at a step's end
RECOVERY_CODE_COUNT: Final = 10
RECOVERY_CODE_LENGTH: Final = 10  # base32 characters (50 random bits), shown as xxxxx-xxxxx
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_MAX_INPUT: Final = 64  # longer input is refused before any work
_TOTP_FORM: Final = re.compile(r"[0-9]{6}")
_RECOVERY_FORM: Final = re.compile(r"[a-z2-7]{10}")
# A key of its own for recovery-code digests, apart from sealing's and the link tokens'.
_RECOVERY_HKDF_INFO: Final = b"spectra/auth/recovery-codes/v1"
QR_TITLE: Final = "QR code for your authenticator app"


class MfaRefused(ValueError):
    """An enrolment step that cannot be done; the message is shown to the person as it is."""


@dataclass(frozen=True)
class Enrolment:
    """What the person sees to set up an authenticator app: scan `qr_svg`, or type `secret_text`."""

    uri: str  # otpauth://totp/SpectraMonitor:<email>?secret=...&issuer=SpectraMonitor
    secret_text: str  # the base32 secret in groups of four, for typing
    qr_svg: str  # the URI as an inline SVG QR code: paths only, no script, no external reference


def begin_enrolment(session: Session, user: User, *, now: datetime) -> Enrolment:
    """A new secret for `user`, sealed into the store; MFA stays off until `confirm_enrolment`.

    Starting again before confirming replaces the pending secret. A user with MFA on must turn it off
    first, so their working authenticator never stops working before a new one is confirmed.
    """
    if user.mfa_enabled:
        raise MfaRefused("two-factor authentication is already on: turn it off before enrolling another device")
    secret = pyotp.random_base32(SECRET_LENGTH)
    user.mfa_secret = seal(secret)[SEALED]
    user.mfa_last_step = None
    session.flush()
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(
        uri=uri,
        secret_text=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        qr_svg=qr_svg(uri),
    )


def confirm_enrolment(
    session: Session, user: User, code: str, *, now: datetime, actor: Actor | None = None
) -> list[str]:
    """Turn MFA on with a first code from the pending secret; returns ten new recovery codes (shown once,
    replacing any old ones). Audited `mfa.enrolled`. `actor` defaults to the user themselves."""
    if user.mfa_enabled:
        raise MfaRefused("two-factor authentication is already on")
    if user.mfa_secret is None:
        raise MfaRefused("no two-factor enrolment has been started")
    normalized = _normalized(code)
    if normalized is None or not _TOTP_FORM.fullmatch(normalized) or not _accept_totp(session, user, normalized, now):
        raise MfaRefused("that code is not valid: enter the 6-digit code your authenticator app shows now")
    user.mfa_enabled = True
    codes = _replace_recovery_codes(session, user)
    audit.record(session, actor or _self(user), "mfa.enrolled", now=now, target=_target(user))
    return codes


def verify(session: Session, user: User, code: str, *, now: datetime, actor: Actor | None = None) -> bool:
    """Whether `code` proves the second factor: a TOTP code of a step not accepted before, or an unused
    recovery code (then used up; audited `mfa.recovery_code_used`). Spaces and dashes are ignored, case
    too; anything else is refused. A refusal changes nothing in the store."""
    if not user.mfa_enabled:
        return False
    normalized = _normalized(code)
    if normalized is None:
        return False
    if _TOTP_FORM.fullmatch(normalized):
        return _accept_totp(session, user, normalized, now)
    if _RECOVERY_FORM.fullmatch(normalized):
        return _use_recovery_code(session, user, normalized, now, actor or _self(user))
    return False


def recovery_codes_left(session: Session, user: User) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def regenerate_recovery_codes(session: Session, user: User, *, now: datetime, actor: Actor | None = None) -> list[str]:
    """Ten new recovery codes replacing every old one (used or not). Audited
    `mfa.recovery_codes_regenerated`."""
    if not user.mfa_enabled:
        raise MfaRefused("two-factor authentication is not on")
    codes = _replace_recovery_codes(session, user)
    audit.record(session, actor or _self(user), "mfa.recovery_codes_regenerated", now=now, target=_target(user))
    return codes


def disable(session: Session, user: User, actor: Actor, *, now: datetime) -> bool:
    """The user turns MFA off: secret, step and recovery codes cleared. Audited `mfa.disabled`; False
    (and nothing recorded) when there was nothing to clear."""
    return _clear(session, user, actor, "mfa.disabled", now)


def reset(session: Session, user: User, actor: Actor, *, now: datetime) -> bool:
    """An admin's "reset MFA" for a user who lost their device (or whose secret is unreadable): as
    `disable`, audited `mfa.reset`; the user enrols again."""
    return _clear(session, user, actor, "mfa.reset", now)


def readable(user: User) -> bool:
    """Whether the stored secret opens with the current SPECTRA_SECRET_KEY (False: only a reset helps)."""
    return _secret(user) is not None


def qr_svg(text: str) -> str:
    """`text` as a QR code in inline SVG: one light square and one path of dark modules, with a title."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,  # standalone too (an <img> source), not only inline in HTML
        nl=False,
        scale=4,
        dark="#000",
        light="#fff",  # a light quiet zone even on a dark page: scanners need the contrast
        title=QR_TITLE,
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue().decode()


def _normalized(code: str) -> str | None:
    # Authenticator apps show "123 456", recovery codes are printed "abcde-fghij"; people add spaces.
    if len(code) > _MAX_INPUT:
        return None
    return "".join(code.split()).replace("-", "").lower()


def _secret(user: User) -> str | None:
    if user.mfa_secret is None:
        return None
    opened = unseal({SEALED: user.mfa_secret})
    return opened if isinstance(opened, str) else None


def _accept_totp(session: Session, user: User, code: str, now: datetime) -> bool:
    secret = _secret(user)
    if secret is None:
        return False
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    matched: int | None = None
    # Every candidate is compared (no early exit), in constant time: timing tells nothing of which matched.
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (matched is None or step > matched):
            matched = step
    if matched is None or (user.mfa_last_step is not None and matched <= user.mfa_last_step):
        return False
    # Guarded in the database too: a second request with the same code, holding a stale copy of the
    # user, updates no row and loses.
    moved = session.execute(
        update(User)
        .where(User.id == user.id, or_(User.mfa_last_step.is_(None), User.mfa_last_step < matched))
        .values(mfa_last_step=matched)
        .execution_options(synchronize_session=False)
    )
    if not getattr(moved, "rowcount", 0):
        return False
    set_committed_value(user, "mfa_last_step", matched)  # what the UPDATE wrote, without reading it back
    return True


def _use_recovery_code(session: Session, user: User, code: str, now: datetime, actor: Actor) -> bool:
    presented = _recovery_digest(user.id, code)
    unused = session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    found: RecoveryCode | None = None
    for row in unused:  # every row compared: no early exit
        if hmac.compare_digest(row.code_hash, presented):
            found = row
    if found is None:
        return False
    used = session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.id == found.id, RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not getattr(used, "rowcount", 0):
        return False  # used by a racing request a moment ago
    set_committed_value(found, "used_at", now)
    audit.record(
        session,
        actor,
        "mfa.recovery_code_used",
        now=now,
        target=_target(user),
        details={"left": recovery_codes_left(session, user)},
    )
    return True


def _replace_recovery_codes(session: Session, user: User) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["".join(secrets.choice(_BASE32) for _ in range(RECOVERY_CODE_LENGTH)) for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(user.id, code)) for code in codes)
    session.flush()
    half = RECOVERY_CODE_LENGTH // 2
    return [f"{code[:half]}-{code[half:]}" for code in codes]


def _recovery_digest(user_id: int, code: str) -> str:
    # The user's id inside the message: one code digests differently for every account.
    return hmac.new(_recovery_key(sealing_secret()), f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=4)
def _recovery_key(secret: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_RECOVERY_HKDF_INFO).derive(secret.encode())


def _clear(session: Session, user: User, actor: Actor, action: str, now: datetime) -> bool:
    had_codes = bool(
        session.scalar(select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user.id))
    )
    if user.mfa_secret is None and not user.mfa_enabled and user.mfa_last_step is None and not had_codes:
        return False
    was_enabled = user.mfa_enabled
    user.mfa_secret = None
    user.mfa_enabled = False
    user.mfa_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.flush()
    audit.record(session, actor, action, now=now, target=_target(user), details={"was_enabled": was_enabled})
    return True


def _self(user: User) -> Actor:
    return Actor(name=user.email, user_id=user.id)


def _target(user: User) -> tuple[str, str | None, str | None]:
    return ("User", None, user.email)
