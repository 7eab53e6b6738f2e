"""Generic webhook (signed JSON) and the HTTP plumbing Slack shares.

The recipient is the URL itself, resolved by the outbox from a `secretref:` at send time: it is a
secret, so it never appears in errors or logs (errors name the status or the exception type only).
Signature scheme (docs/notifications.md): `X-Spectra-Signature: sha256=<hex HMAC-SHA256(key, raw body)>`
with key SPECTRA_SECRET_KEY, plus `X-Spectra-Timestamp` (unix seconds, also `sentAt` inside the signed
body) and `Idempotency-Key` (the same for every retry of one message).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from spectra.notify.channel import ChannelName, Delivery, Message, TemporaryFailure
from spectra.notify.retry import failure_for_status, header, is_success

SIGNATURE_HEADER: Final = "X-Spectra-Signature"
TIMESTAMP_HEADER: Final = "X-Spectra-Timestamp"
USER_AGENT: Final = "SpectraMonitor-Notify/1"


def sign(key: bytes, body: bytes) -> str:
    """The X-Spectra-Signature value for `body`."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str) -> bool:
    """Constant-time check of an X-Spectra-Signature value (what receivers should do)."""
    return hmac.compare_digest(sign(key, body), signature)


class HttpPoster:
    """One shared aiohttp session (made on first use) posting to secret URLs.

    aiohttp rather than httpx here: httpx logs every request URL at INFO, and these URLs are secrets.
    """

    def __init__(self, provider: str, timeout_s: float) -> None:
        self._provider = provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
        try:
            async with self._session.post(
                url, data=body, headers={"User-Agent": USER_AGENT, **headers}, allow_redirects=False
            ) as response:
                await response.read()
                result = PostResult(response.status, dict(response.headers))
        except TimeoutError:
            raise TemporaryFailure(f"{self._provider} did not answer in time") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # never str(exc): it can carry the URL
            raise TemporaryFailure(f"{self._provider} unreachable: {type(exc).__name__}") from None
        if not is_success(result.status_code):
            raise failure_for_status(self._provider, result.status_code, result.headers)
        return result

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True)
class PostResult:
    status_code: int
    headers: dict[str, str]


def webhook_body(message: Message, sent_at: datetime) -> dict[str, Any]:
    facts = message.facts
    return {
        "event": facts.get("event") or facts.get("state") or "notification",
        "idempotencyKey": message.idempotency_key,
        "sentAt": sent_at.isoformat(),
        "subject": message.subject,
        "text": message.text,
        "facts": facts,
    }


class WebhookChannel:
    """POSTs the message as JSON, signed with SPECTRA_SECRET_KEY when one is configured."""

    name = ChannelName.WEBHOOK

    def __init__(self, signing_key: str | bytes | None, *, timeout_s: float = 10.0) -> None:
        self._key = signing_key.encode() if isinstance(signing_key, str) else signing_key
        self._http = HttpPoster("webhook", timeout_s)

    def __repr__(self) -> str:
        return f"WebhookChannel(signed={self._key is not None})"

    async def send(self, message: Message) -> Delivery:
        now = datetime.now(UTC)
        body = json.dumps(webhook_body(message, now), separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(int(time.time())),
            "Idempotency-Key": message.idempotency_key,
        }
        if self._key:
            headers[SIGNATURE_HEADER] = sign(self._key, body)
        response = await self._http.post(message.recipient, body, headers)
        return Delivery(provider_message_id=header(response.headers, "X-Request-Id"), status_code=response.status_code)

    async def aclose(self) -> None:
        await self._http.aclose()
