"""Generic webhook (signed JSON) and the HTTP plumbing Slack shares.

The recipient is the URL itself, resolved by the outbox from a `secretref:` at send time: it is a
secret, so it never appears in errors or logs (errors name the status or the exception type only).
Signature scheme (docs/notifications.md): `X-Spectra-Signature: sha256=<hex HMAC-SHA256(key, raw body)>`
with key SPECTRA_SECRET_KEY, plus `X-Spectra-Timestamp` (unix seconds, also `sentAt` inside the signed
body) and `Idempotency-Key` (the same for every retry of one message).

The URL comes from a tenant's Secret, so every connection passes the egress guard (the probes' policy):
a refused address is a permanent failure that says only that, and a connection that failed at an
internal address says "unreachable" whatever happened, so the recorded errors cannot map ports inside.
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

from spectra.api.addresses import IPAddress
from spectra.domain.egress import EgressGuard, EgressPolicy, guarded_session, reached_addresses, refusal_in
from spectra.notify.channel import ChannelName, Delivery, Message, PermanentFailure, TemporaryFailure
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
    """One shared guarded aiohttp session (made on first use) posting to secret URLs.

    aiohttp rather than httpx here: httpx logs every request URL at INFO, and these URLs are secrets.
    """

    def __init__(self, provider: str, timeout_s: float, egress: EgressPolicy) -> None:
        self._provider = provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._guard = EgressGuard(egress)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self._guard, timeout=self._timeout)
        with reached_addresses() as reached:
            try:
                async with self._session.post(
                    url, data=body, headers={"User-Agent": USER_AGENT, **headers}, allow_redirects=False
                ) as response:
                    await response.read()
                    result = PostResult(response.status, dict(response.headers))
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                raise delivery_failure(self._provider, exc, reached, self._guard.policy) from None
        if not is_success(result.status_code):
            raise failure_for_status(self._provider, result.status_code, result.headers)
        return result

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def delivery_failure(
    provider: str, error: BaseException, reached: list[IPAddress], policy: EgressPolicy
) -> PermanentFailure | TemporaryFailure:
    """What is recorded of a failed post: never str(error) (it can carry the URL), and when the connection
    was to an internal address not even which error (refused, reset or timed out), which would tell an open
    port from a closed one. `reached` holds the addresses the guard let the post connect to."""
    if refusal_in(error) is not None:
        return PermanentFailure(f"{provider} delivery refused by the egress policy")
    if any(policy.is_internal(address) for address in reached):
        return TemporaryFailure(f"{provider} unreachable")
    if isinstance(error, TimeoutError):
        return TemporaryFailure(f"{provider} did not answer in time")
    return TemporaryFailure(f"{provider} unreachable: {type(error).__name__}")


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

    def __init__(self, signing_key: str | bytes | None, *, egress: EgressPolicy, timeout_s: float = 10.0) -> None:
        self._key = signing_key.encode() if isinstance(signing_key, str) else signing_key
        self._http = HttpPoster("webhook", timeout_s, egress)

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
