"""Short-lived access JWTs: what a signed-in browser or client presents on every request.

HS256 only (PyJWT, `algorithms=["HS256"]`; the header's `alg` never picks the algorithm, `none` is
refused before anything else), with a key derived by HKDF-SHA256 from a secret under a label of its own,
so no link token, sealed value or other use of the same secret ever shares a key with an access token.
The header's `kid` names the key: :class:`Keys` holds the one that signs and the older ones still
accepted, from `SPECTRA_JWT_KEYS` (secrets separated by commas, the first signs, every one verifies)
or, when that is unset, from SPECTRA_SECRET_KEY alone. A `kid` is derived from its secret too, so every
replica names the same key the same way and no list of ids has to be kept in step.

Claims: `sub` (the user id as text), `email`, `org`, `role`, `pa` (platform admin), `sid` (the session,
see spectra.auth.sessions), `aud`, `iss`, `iat`, `nbf`, `exp`, `jti`, and the RFC 8693 `act` claim
(`{"sub": <impersonator id>, "email": ...}`) while a platform admin acts as the user. An access token
is not checked against the store: it is good until `exp` (10 minutes by default), which is why it is
short; actions that must see a logout at once ask `sessions.is_active`.

A verified token is remembered (bounded, per set of keys) so the same token on the next request costs a
dictionary look-up and the clock check instead of a second HMAC and JSON parse: a client presents one
token for its whole life.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from spectra.auth.identity import Principal
from spectra.store.accounts import Role
from spectra.store.environment import seconds_setting
from spectra.tokens import secret_key

ALGORITHM: Final = "HS256"
AUDIENCE: Final = "spectramonitor"
ISSUER: Final = "spectramonitor/sessions"
KEYS_ENV: Final = "SPECTRA_JWT_KEYS"
LIFETIME_ENV: Final = "SPECTRA_ACCESS_TOKEN_TTL_S"
DEFAULT_LIFETIME: Final = timedelta(minutes=10)
MAX_LIFETIME: Final = timedelta(minutes=15)
MIN_KEY_CHARS: Final = 32
# Replicas' clocks differ a little: a token made a moment "in the future" by another replica is fine.
NOT_BEFORE_LEEWAY: Final = timedelta(seconds=30)
# The longest token we could have made is ~1 KB; anything far longer is refused before it is parsed.
MAX_TOKEN_CHARS: Final = 4096
REMEMBERED_TOKENS: Final = 10_000

# Labels of their own: a JWT key is never a link-token or sealing key, and a kid reveals nothing of it.
_KEY_INFO: Final = b"spectra/auth/access-token/v1"
_KID_INFO: Final = b"spectra/auth/access-token/kid/v1"
_HEADER_FIELDS: Final = frozenset({"alg", "kid", "typ"})
_USER_ID: Final = re.compile(r"[1-9][0-9]{0,18}")
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+")
_DECODE_OPTIONS: Final[Any] = {
    # Time is checked below against the caller's `now` (PyJWT would read the wall clock).
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": True,
    "require": ["sub", "sid", "aud", "iss", "iat", "nbf", "exp", "jti"],
}


class InvalidAccess(Exception):
    """An access token that proves nothing. `reason` is for logs; a person is told only to sign in."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Key:
    kid: str
    secret: bytes = field(repr=False)

    @classmethod
    def derive(cls, source: str) -> Key:
        material = source.encode()
        secret = HKDF(algorithm=SHA256(), length=32, salt=None, info=_KEY_INFO).derive(material)
        kid_bytes = HKDF(algorithm=SHA256(), length=6, salt=None, info=_KID_INFO).derive(material)
        return cls(kid=base64.urlsafe_b64encode(kid_bytes).decode(), secret=secret)


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    not_before: int
    expires: int


class Keys:
    """The key that signs new tokens and every key whose tokens are still accepted (by `kid`)."""

    def __init__(self, signing: Key, older: Sequence[Key] = ()) -> None:
        self.signing = signing
        accepted = {signing.kid: signing}
        for key in older:
            accepted.setdefault(key.kid, key)
        self.accepted: Mapping[str, Key] = accepted
        self._verified: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_secrets(cls, sources: Sequence[str]) -> Keys:
        """The first secret signs; each later one is accepted until it is removed."""
        if not sources:
            raise ValueError("at least one key is needed")
        first, *older = (Key.derive(source) for source in sources)
        return cls(first, older)

    def verify(self, token: str, *, now: datetime) -> Principal:
        """See the module function :func:`verify`."""
        known = self._verified.get(token) if isinstance(token, str) else None
        if known is None:
            known = _verify_signed(token, self)
            with self._lock:
                if len(self._verified) >= REMEMBERED_TOKENS:
                    # The oldest first: dicts keep insertion order, and old tokens expire first anyway.
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = known
        at = now.timestamp()
        if at >= known.expires:
            raise InvalidAccess("expired")
        if at + NOT_BEFORE_LEEWAY.total_seconds() < known.not_before:
            raise InvalidAccess("not yet valid")
        return known.principal


def current_keys() -> Keys:
    """The keys of $SPECTRA_JWT_KEYS, else of SPECTRA_SECRET_KEY (random per process when unset);
    ValueError naming the variable when a key is too short to be a secret."""
    return _keys_of(os.environ.get(KEYS_ENV, ""), secret_key())


@functools.lru_cache(maxsize=4)
def _keys_of(configured: str, fallback: str) -> Keys:
    sources = [part.strip() for part in configured.split(",") if part.strip()]
    if not sources:
        return Keys.from_secrets([fallback])
    for position, source in enumerate(sources, start=1):
        if len(source) < MIN_KEY_CHARS:
            raise ValueError(
                f"{KEYS_ENV}: key {position} has {len(source)} characters; each needs at least {MIN_KEY_CHARS} "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    return Keys.from_secrets(sources)


def access_lifetime() -> timedelta:
    """$SPECTRA_ACCESS_TOKEN_TTL_S (60-900 s), else 10 minutes."""
    seconds = seconds_setting(
        LIFETIME_ENV,
        DEFAULT_LIFETIME.total_seconds(),
        minimum=60,
        maximum=MAX_LIFETIME.total_seconds(),
    )
    return timedelta(seconds=seconds)


def issue(
    principal: Principal,
    *,
    now: datetime,
    expires_at: datetime | None = None,
    keys: Keys | None = None,
) -> str:
    """An access token for a session's principal, good from `now` until `expires_at` (default: now plus
    :func:`access_lifetime`; a session passes its own end when that comes sooner)."""
    if principal.session_id is None or principal.scopes is not None or principal.via != "session":
        raise ValueError("access tokens are for sessions only (an API token is presented as it is)")
    keys = keys or current_keys()
    end = expires_at if expires_at is not None else now + access_lifetime()
    if not now < end <= now + MAX_LIFETIME:
        raise ValueError(f"an access token lives between 0 and {MAX_LIFETIME} (asked: {end - now})")
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": str(principal.user_id),
        "email": principal.email,
        "org": principal.organization,
        "role": None if principal.role is None else principal.role.value,
        "pa": principal.platform_admin,
        "sid": principal.session_id,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": issued,
        "nbf": issued,
        "exp": int(end.timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    if principal.impersonator_id is not None:
        claims["act"] = {"sub": str(principal.impersonator_id), "email": principal.impersonator_email}
    return jwt.encode(claims, keys.signing.secret, algorithm=ALGORITHM, headers={"kid": keys.signing.kid})


def verify(token: str, *, now: datetime, keys: Keys | None = None) -> Principal:
    """The principal `token` proves at `now`; InvalidAccess with the reason otherwise (expired, bad
    signature, unknown kid, wrong audience, alg none, malformed, ...)."""
    return (keys or current_keys()).verify(token, now=now)


def _verify_signed(token: object, keys: Keys) -> _Verified:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidAccess("malformed")
    header = _header(token)
    algorithm = header.get("alg")
    if isinstance(algorithm, str) and algorithm.lower() == "none":
        raise InvalidAccess("alg none")
    if algorithm != ALGORITHM:
        raise InvalidAccess("algorithm not allowed")
    if not set(header) <= _HEADER_FIELDS:
        # jku, jwk, x5u, crit, b64...: nothing we make carries them, and each changes how a token is read.
        raise InvalidAccess("malformed")
    kid = header.get("kid")
    key = keys.accepted.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidAccess("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options=_DECODE_OPTIONS,
        )
    except jwt.InvalidSignatureError:
        raise InvalidAccess("bad signature") from None
    except jwt.InvalidAudienceError:
        raise InvalidAccess("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidAccess("wrong issuer") from None
    except (jwt.MissingRequiredClaimError, jwt.exceptions.InvalidSubjectError, jwt.exceptions.InvalidJTIError):
        raise InvalidAccess("malformed claims") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidAccess("algorithm not allowed") from None
    except jwt.InvalidTokenError:
        raise InvalidAccess("malformed") from None
    return _verified(claims)


def _header(token: str) -> dict[str, Any]:
    # Read here (not with jwt.get_unverified_header) to refuse `none` and unknown kids before PyJWT works.
    segment, dot, _ = token.partition(".")
    if not dot or not _SEGMENT.fullmatch(segment):
        raise InvalidAccess("malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidAccess("malformed") from None
    if not isinstance(header, dict):
        raise InvalidAccess("malformed")
    return header


def _verified(claims: dict[str, Any]) -> _Verified:
    try:
        user_id = _user_id(claims["sub"])
        role = claims.get("role")
        principal = Principal(
            user_id=user_id,
            email=_text(claims.get("email")),
            organization=_optional_text(claims.get("org")),
            role=None if role is None else Role(_text(role)),
            platform_admin=_flag(claims.get("pa")),
            session_id=_text(claims["sid"]),
            **_actor(claims.get("act")),
        )
        not_before, issued, expires = (_seconds(claims[name]) for name in ("nbf", "iat", "exp"))
    except (ValueError, TypeError):
        raise InvalidAccess("malformed claims") from None
    if not issued <= expires or not not_before <= expires or not _text(claims["jti"]):
        raise InvalidAccess("malformed claims")
    return _Verified(principal=principal, not_before=max(not_before, issued), expires=expires)


def _actor(act: object) -> dict[str, Any]:
    if act is None:
        return {}
    if not isinstance(act, dict) or set(act) != {"sub", "email"}:
        raise ValueError("act")
    return {"impersonator_id": _user_id(act["sub"]), "impersonator_email": _text(act["email"])}


def _user_id(value: object) -> int:
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        raise ValueError("sub")
    return int(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("text")
    return value


def _optional_text(value: object) -> str | None:
    # "" is the implicit organization of standalone mode: a name, not absent.
    if value is None or isinstance(value, str):
        return value
    raise TypeError("text")


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("flag")
    return value


def _seconds(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("NumericDate")
    return value
