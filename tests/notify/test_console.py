"""The console channel: one log line per message, never a secret URL."""

from __future__ import annotations

import logging

import pytest

from spectra.notify.channel import ChannelName
from spectra.notify.console import ConsoleChannel
from tests.factories.notify import msg


async def test_console_logs_one_line_without_secret_urls(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    delivery = await ConsoleChannel().send(msg(ChannelName.WEBHOOK, "https://hooks.example/secret-path"))
    assert delivery.provider_message_id
    assert len(caplog.records) == 1
    assert "secret-path" not in caplog.text
    assert "K7Q2" in caplog.text
