"""SecretRedactor: no secret in any log line, whoever logs it."""

from __future__ import annotations

import logging
import sys

import pytest

from spectra.runtime.redaction import REDACTED, SecretRedactor, redact_logs

SENDGRID_KEY = "SG.abcdefghijklmnop.qrstuvwxyz0123456789"
TWILIO_TOKEN = "twilio-auth-token-0123456789"
SIGNING_KEY = "signing-key-abcdef0123456789"
ENVIRONMENT = {
    "SENDGRID_API_KEY": SENDGRID_KEY,
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "SPECTRA_SECRET_KEY": SIGNING_KEY,
    "SPECTRA_DATABASE_URL": "mysql://spectra:db-password-42@db:3306/spectra",
}


@pytest.mark.parametrize(
    ("message", "args", "hidden"),
    [
        ("send: b'Authorization: Bearer %s'", (SENDGRID_KEY,), SENDGRID_KEY),  # python-http-client at DEBUG
        ("key is %s", (SENDGRID_KEY.replace("abc", "xyz"),), "SG.xyzdefghijklmnop"),  # any SendGrid-shaped key
        ("twilio token %s", (TWILIO_TOKEN,), TWILIO_TOKEN),
        ("Authorization: Basic %s", ("QUMxMjM6dG9rZW4xMjM0NTY=",), "QUMxMjM6dG9rZW4xMjM0NTY="),
        ("signed with %s", (SIGNING_KEY,), SIGNING_KEY),
        ("connecting to mysql://spectra:%s@db", ("db-password-42",), "db-password-42"),
        ("GET /ack/%s", ("eyJpIjo3fQ.ZfQ1xw.abcdefghijklmnopqrstuv",), "eyJpIjo3fQ.ZfQ1xw"),
        ("GET /s/page/confirm/%s 200", ("eyJzIjoxfQ.ZfQ1xw.0123456789abcdefghij",), "eyJzIjoxfQ"),
        ("GET /s/page/unsubscribe/%s 200", ("eyJzIjoxfQ.ZfQ1xw.0123456789abcdefghij",), "eyJzIjoxfQ"),
    ],
)
def test_secrets_are_redacted_from_messages_and_arguments(message: str, args: tuple[str, ...], hidden: str) -> None:
    redactor = SecretRedactor.from_environment(ENVIRONMENT)
    record = logging.LogRecord("lib", logging.DEBUG, __file__, 1, message, args, None)
    assert redactor.filter(record) is True
    assert hidden not in record.getMessage()
    assert REDACTED in record.getMessage()


def test_ordinary_text_is_untouched() -> None:
    redactor = SecretRedactor.from_environment(ENVIRONMENT)
    record = logging.LogRecord("spectra", logging.INFO, __file__, 1, "incident %s opened: %s", ("K7Q2", "api"), None)
    redactor.filter(record)
    assert record.getMessage() == "incident K7Q2 opened: api"
    assert record.args == ("K7Q2", "api")  # untouched records keep their arguments


def test_tracebacks_are_redacted_too() -> None:
    redactor = SecretRedactor.from_environment(ENVIRONMENT)
    try:
        raise RuntimeError(f"provider refused key {SENDGRID_KEY}")
    except RuntimeError:
        record = logging.LogRecord("lib", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    redactor.filter(record)
    assert record.exc_text is not None
    assert SENDGRID_KEY not in record.exc_text


def test_installed_on_the_root_handlers_and_twilio_quieted(caplog: pytest.LogCaptureFixture) -> None:
    redactor = redact_logs(SecretRedactor([TWILIO_TOKEN]))
    try:
        assert logging.getLogger("twilio.http_client").level == logging.WARNING
        handler = caplog.handler
        handler.addFilter(redactor)
        logging.getLogger("anything").warning("token=%s", TWILIO_TOKEN)
        assert TWILIO_TOKEN not in caplog.text
    finally:
        for each in logging.getLogger().handlers:
            each.removeFilter(redactor)
