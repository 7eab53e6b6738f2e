"""The SendGrid and Twilio stand-ins (tests/notify/fakes.py) for end-to-end tests of real spectra processes.

They run in a thread of the test; the spectra process reaches them through SPECTRA_SENDGRID_URL and
SPECTRA_TWILIO_URL (`Providers.env`).
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from contextlib import AsyncExitStack
from typing import Any

from notify.fakes import FakeSendGrid, FakeTwilio, sendgrid_fake, twilio_fake


class Providers:
    """The SendGrid and Twilio stand-ins, served from an event loop in a thread of their own."""

    def __init__(self) -> None:
        self.sendgrid: FakeSendGrid | None = None
        self.twilio: FakeTwilio | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the provider stand-ins did not start"

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            self.sendgrid = await stack.enter_async_context(sendgrid_fake())
            self.twilio = await stack.enter_async_context(twilio_fake())
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def emails(self, to: str) -> list[dict[str, Any]]:
        assert self.sendgrid is not None
        mails = [record.json() for record in list(self.sendgrid.accepted())]
        return [mail for mail in mails if any(t["email"] == to for p in mail["personalizations"] for t in p["to"])]

    def texts(self, to: str) -> list[dict[str, str]]:
        assert self.twilio is not None
        forms = [dict(urllib.parse.parse_qsl(record.body.decode())) for record in list(self.twilio.sent("Messages"))]
        return [form for form in forms if form.get("To") == to]

    def env(self) -> dict[str, str]:
        assert self.sendgrid is not None
        assert self.twilio is not None
        return {
            "SENDGRID_API_KEY": self.sendgrid.api_key,
            "SPECTRA_SENDGRID_URL": self.sendgrid.url,
            "SPECTRA_EMAIL_FROM": "spectra@example.com",
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15559990000",
            "SPECTRA_TWILIO_URL": self.twilio.url,
        }


def text_of(mail: dict[str, Any]) -> str:
    return "\n".join(part["value"] for part in mail["content"] if part["type"] == "text/plain")
