"""Fixtures: the provider fakes, and a migrated database with a session factory."""

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
