"""Email through SendGrid's v3 API with the real `sendgrid` library (HTML and text parts).

Settings: SENDGRID_API_KEY, SPECTRA_EMAIL_FROM, SPECTRA_SENDGRID_URL (another base URL); without a key,
email goes to the console channel.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jinja2
from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]
from sendgrid import SendGridAPIClient  # type: ignore[import-untyped]
from sendgrid.helpers.mail import CustomArg, Header, Mail  # type: ignore[import-untyped]

from spectra.notify.channel import (
    ChannelName,
    Delivery,
    Message,
    PermanentFailure,
    TemporaryFailure,
    run_blocking,
)
from spectra.notify.retry import failure_for_status, header, is_success
from spectra.runtime.templates import environment

DEFAULT_SENDGRID_URL: Final = "https://api.sendgrid.com"
DEFAULT_EMAIL_FROM: Final = "spectra@localhost"


@dataclass(frozen=True, repr=False)
class SendGridSettings:
    api_key: str
    from_email: str
    host: str | None

    def __repr__(self) -> str:
        return f"SendGridSettings(from_email={self.from_email!r}, host={self.host!r})"


def sendgrid_settings(env: Mapping[str, str]) -> SendGridSettings | None:
    key = env.get("SENDGRID_API_KEY", "").strip()
    if not key:
        return None
    return SendGridSettings(
        api_key=key,
        from_email=env.get("SPECTRA_EMAIL_FROM", "").strip() or DEFAULT_EMAIL_FROM,
        host=env.get("SPECTRA_SENDGRID_URL", "").strip() or None,
    )


_ROWS: Final = (
    ("Monitor", "monitor"),
    ("State", "state"),
    ("Reason", "reason"),
    ("Opened", "opened_at"),
    ("Severity", "severity"),
)

# Autoescaped HTML (facts come from users' manifests and from probed servers' answers); plain text as is.
_TEMPLATES = environment("spectra.notify", undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)


def render_email(message: Message) -> tuple[str, str]:
    """The (text, html) parts of `message`: its facts when present, else its text; its html wins if given."""
    context: dict[str, Any] = {"facts": message.facts, "subject": message.subject, "text": message.text, "rows": _ROWS}
    text = _TEMPLATES.get_template("email.txt").render(context).strip() + "\n"
    html = message.html if message.html is not None else _TEMPLATES.get_template("email.html").render(context)
    return text, html


class SendGridChannel:
    """Sends through `SendGridAPIClient(api_key, host)`; the synchronous client runs in a thread (`run_blocking`)."""

    name = ChannelName.EMAIL

    def __init__(self, api_key: str, from_email: str, *, host: str | None = None, timeout_s: float = 10.0) -> None:
        self._api_key = api_key
        self._from = from_email
        self._host = (host or DEFAULT_SENDGRID_URL).rstrip("/")
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"SendGridChannel(host={self._host!r}, from_email={self._from!r})"

    def build(self, message: Message) -> dict[str, Any]:
        """The v3 mail/send request body for `message`."""
        text, html = render_email(message)
        mail = Mail(
            from_email=self._from,
            to_emails=message.recipient,
            subject=message.subject,
            plain_text_content=text,
            html_content=html,
        )
        for name, value in message.headers.items():
            mail.header = Header(name, value)
        mail.custom_arg = CustomArg("idempotency_key", message.idempotency_key)
        body: dict[str, Any] = mail.get()
        return body

    async def send(self, message: Message) -> Delivery:
        body = self.build(message)
        try:
            response = await asyncio.wait_for(run_blocking(self._post, body), self._timeout_s + 5)
        except HTTPError as exc:
            raise failure_for_status("SendGrid", int(exc.status_code), exc.headers, _errors(exc.body)) from None
        except TimeoutError:
            raise TemporaryFailure("SendGrid did not answer in time") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryFailure(f"SendGrid unreachable: {type(exc).__name__}") from None
        status = int(response.status_code)
        if not is_success(status):
            raise failure_for_status("SendGrid", status, response.headers)
        return Delivery(provider_message_id=header(response.headers, "X-Message-Id"), status_code=status)

    def _post(self, body: dict[str, Any]) -> Any:
        # One client per send: python_http_client mutates shared request headers, so sharing across
        # threads is not safe, and building one costs nothing (no connection pool behind it).
        client = SendGridAPIClient(api_key=self._api_key, host=self._host)
        return client.client.mail.send.post(request_body=body, timeout=self._timeout_s)


def _errors(body: object) -> str:
    """SendGrid's error messages (`{"errors": [{"message": ...}]}`), short; never the request."""
    try:
        parsed = json.loads(body if isinstance(body, str | bytes) else "")
        messages = [str(e.get("message", "")) for e in parsed.get("errors", []) if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return ""
    return "; ".join(m for m in messages if m)[:300]


__all__ = ["DEFAULT_SENDGRID_URL", "PermanentFailure", "SendGridChannel", "render_email"]
