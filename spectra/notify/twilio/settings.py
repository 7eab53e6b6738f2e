"""Twilio settings from the environment: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER and
SPECTRA_TWILIO_URL (another base URL: a proxy, the tests' stand-in). Without all three keys SMS and voice
go to the console channel. The webhooks need only the auth token (Twilio signs with it); without it they
refuse every request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    base_url: str | None

    def __repr__(self) -> str:
        return f"TwilioSettings(account_sid={self.account_sid!r}, base_url={self.base_url!r})"


def twilio_settings(env: Mapping[str, str]) -> TwilioSettings | None:
    names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
    sid, token, number = (env.get(name, "").strip() for name in names)
    if not (sid and token and number):
        return None
    return TwilioSettings(sid, token, number, env.get("SPECTRA_TWILIO_URL", "").strip() or None)


def webhook_auth_token(env: Mapping[str, str] = os.environ) -> str | None:
    """The token Twilio signs its webhooks with (TWILIO_AUTH_TOKEN), or None."""
    return env.get("TWILIO_AUTH_TOKEN", "").strip() or None
