"""Signed, single-purpose, expiring tokens for links: ack, confirm, unsubscribe, and the account links
(first setup, invitation, password reset; spectra.auth.accounts makes them single-use), and the
sign-in step between a right password and the second factor.

Each purpose has its own salt, so a token made for one purpose is refused for every other; tokens
carry a timestamp and are refused after `max_age`. The key is SPECTRA_SECRET_KEY.
"""

from __future__ import annotations

import functools
import os
import secrets
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    ACK = "ack"
    CONFIRM = "subscription-confirm"
    UNSUBSCRIBE = "unsubscribe"
    SETUP = "account-setup"
    INVITE = "account-invite"
    RESET = "password-reset"
    SIGN_IN_MFA = "sign-in-mfa"  # the step between a right password and the second factor (spectra.web)
    ONCALL_FEED = "oncall-feed"  # a user's on-call calendar URL: names the user and the feed's version


class InvalidToken(ValueError):
    """Tampered, expired or made for another purpose; the message says which, never the payload."""


def secret_key() -> str:
    """SPECTRA_SECRET_KEY, or a random per-process key (links then die with the process; fine standalone)."""
    return os.environ.get("SPECTRA_SECRET_KEY") or _ephemeral_key()


@functools.cache
def _ephemeral_key() -> str:
    return secrets.token_urlsafe(32)


class Tokens:
    def __init__(self, key: str | None = None) -> None:
        self._key = key or secret_key()

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._key, salt=f"spectra/{purpose.value}")

    def make(self, purpose: Purpose, payload: dict[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(payload))

    def read(self, purpose: Purpose, token: str, *, max_age_s: int) -> dict[str, Any]:
        try:
            payload = self._serializer(purpose).loads(token, max_age=int(max_age_s))
        except SignatureExpired:
            raise InvalidToken("this link has expired") from None
        except BadSignature:
            raise InvalidToken("this link is not valid") from None
        if not isinstance(payload, dict):
            raise InvalidToken("this link is not valid")
        return payload
