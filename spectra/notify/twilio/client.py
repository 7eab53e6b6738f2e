"""Twilio's REST client, pointed at our base URL, with our idempotency headers; shared by SMS and voice.

Twilio's Messages and Calls create endpoints document no idempotency key (the library offers one only
for Payments and user-defined messages; `I-Twilio-Idempotency-Token` is documented as a header Twilio
*sends* on its webhooks). We still send our key in `I-Twilio-Idempotency-Token` and `Idempotency-Key`
(harmless if ignored), but the outbox must assume a create can be repeated after a crash between
Twilio's answer and our record: at most one duplicate (see docs/notifications.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, TypeVar

import requests
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from spectra.notify.channel import Message, TemporaryFailure, run_blocking
from spectra.notify.retry import failure_for_status

DEFAULT_TWILIO_URL: Final = "https://api.twilio.com"
IDEMPOTENCY_HEADERS: Final = ("I-Twilio-Idempotency-Token", "Idempotency-Key")

T = TypeVar("T")


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]
    """TwilioHttpClient that adds our idempotency headers and keeps the last response's headers."""

    def __init__(self, idempotency_key: str, timeout_s: float) -> None:
        super().__init__(timeout=timeout_s)
        self._key = idempotency_key
        self.last_headers: dict[str, str] = {}

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        headers = dict(kwargs.pop("headers", None) or {})
        for name in IDEMPOTENCY_HEADERS:
            headers[name] = self._key
        response = super().request(method, url, *args, headers=headers, **kwargs)
        self.last_headers = dict(response.headers or {})
        return response


class TwilioAccount:
    """Credentials, sender number and base URL; runs one synchronous API call in a thread."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number
        self.base_url = (base_url or DEFAULT_TWILIO_URL).rstrip("/")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never the token
        return f"TwilioAccount(account_sid={self.account_sid!r}, base_url={self.base_url!r})"

    def client(self, idempotency_key: str) -> tuple[Client, _HttpClient]:
        http = _HttpClient(idempotency_key, self.timeout_s)
        # environment={}: TWILIO_EDGE / TWILIO_REGION from the process must not rewrite our host.
        client = Client(self.account_sid, self._auth_token, http_client=http, environment={})
        # Every v2010 URL is `{client.api.base_url}/2010-04-01/...` (Domain.absolute_url); with no edge
        # or region set, ClientBase.get_hostname leaves it alone. So this redirects Messages and Calls.
        client.api.base_url = self.base_url
        return client, http

    async def call(self, what: str, message: Message, action: Callable[[Client], T]) -> T:
        client, http = self.client(message.idempotency_key)
        try:
            return await asyncio.wait_for(run_blocking(action, client), self.timeout_s + 5)
        except TwilioRestException as exc:
            detail = f"code {exc.code}" if exc.code else ""
            raise failure_for_status(f"Twilio {what}", int(exc.status), http.last_headers, detail) from None
        except TimeoutError:
            raise TemporaryFailure(f"Twilio {what} did not answer in time") from None
        except (requests.RequestException, OSError) as exc:
            raise TemporaryFailure(f"Twilio {what} unreachable: {type(exc).__name__}") from None
