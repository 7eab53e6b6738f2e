"""Nothing secret in any log line: one logging filter on the process's handlers redacts it from every record.

Libraries log what they send (python-http-client logs request headers at DEBUG, with the SendGrid key;
Twilio's client logs phone numbers and bodies at INFO), and our own messages may quote a URL with a link
token. Rather than trusting every call site, the handler's filter rewrites each record once it is
formatted: the values of the secret settings of the environment (provider keys and tokens, the signing
key, the database password) and anything shaped like a credential (SendGrid keys, bearer and basic
authorization values, the token part of ack, confirm, unsubscribe, invitation and password-reset links)
become ``[redacted]``. The first admin's setup link is not: `spectra run` logs it on purpose.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

REDACTED: Final = "[redacted]"
SECRET_SETTINGS: Final = ("SENDGRID_API_KEY", "TWILIO_AUTH_TOKEN", "SPECTRA_SECRET_KEY")
MIN_SECRET_LEN: Final = 6  # shorter values would redact ordinary words
CREDENTIAL_SHAPES: Final = re.compile(
    r"SG\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # SendGrid API keys
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{8,}"  # Authorization: Bearer ...
    r"|(?<=[Bb]asic )[A-Za-z0-9+/=]{8,}"  # Authorization: Basic ...
    r"|(?<=/ack/)[A-Za-z0-9._\-]{16,}"  # signed link tokens in paths
    r"|(?<=/confirm/)[A-Za-z0-9._\-]{16,}"
    r"|(?<=/unsubscribe/)[A-Za-z0-9._\-]{16,}"
    r"|(?<=/invite/)[A-Za-z0-9._\-]{16,}"
    r"|(?<=/reset/)[A-Za-z0-9._\-]{16,}"
)


class SecretRedactor(logging.Filter):
    """Rewrites each record's message with secrets and credential-shaped strings replaced by ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        values = {value for value in secrets if len(value) >= MIN_SECRET_LEN}
        # Longest first, so a secret that contains another is replaced whole.
        self._exact = (
            re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))) if values else None
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SecretRedactor:
        env = os.environ if environ is None else environ
        secrets = [env.get(name, "") for name in SECRET_SETTINGS]
        try:
            password = (
                make_url(env.get("SPECTRA_DATABASE_URL", "")).password if env.get("SPECTRA_DATABASE_URL") else None
            )
        except ArgumentError:
            password = None
        if password:
            secrets.append(str(password))
        return cls(secrets)

    def redact(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        return CREDENTIAL_SHAPES.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logs(redactor: SecretRedactor | None = None) -> SecretRedactor:
    """Install ``redactor`` (default: from the environment) on every handler of the root logger; quiet the
    Twilio client's INFO lines, which hold phone numbers and message bodies."""
    redactor = redactor or SecretRedactor.from_environment()
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return redactor
