"""Fixtures: the provider stand-ins of tests/support/providers.py, each started per test (here and in
tests/notify/twilio). The migrated database (`sessions`) comes from tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.providers import FakeReceiver, FakeSendGrid, FakeTwilio, receiver_fake, sendgrid_fake, twilio_fake


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with sendgrid_fake() as fake:
        yield fake


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with twilio_fake() as fake:
        yield fake


@pytest.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    async with receiver_fake(b"spectra-signing-key") as fake:
        yield fake
