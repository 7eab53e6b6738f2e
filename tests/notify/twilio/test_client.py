"""The Twilio account shared by SMS and voice: how Twilio's answers and silence become our failures
(exercised through the SMS channel, the simplest caller), and the token never shows."""

from __future__ import annotations

import pytest

from spectra.notify.channel import ChannelName, PermanentFailure, TemporaryFailure
from spectra.notify.twilio.client import TwilioAccount
from spectra.notify.twilio.sms import TwilioSmsChannel
from tests.factories.notify import msg, twilio_account
from tests.support.processes import free_port
from tests.support.providers import FakeTwilio, Step


@pytest.mark.parametrize(
    ("script", "expected", "status", "retry_after"),
    [
        ([503], TemporaryFailure, 503, None),
        ([(429, {"Retry-After": "11"})], TemporaryFailure, 429, 11.0),
        ([400], PermanentFailure, 400, None),
    ],
)
async def test_twilio_status_mapping(
    twilio: FakeTwilio,
    script: list[Step],
    expected: type[TemporaryFailure | PermanentFailure],
    status: int,
    retry_after: float | None,
) -> None:
    twilio.script = script
    with pytest.raises(expected) as caught:
        await TwilioSmsChannel(twilio_account(twilio)).send(msg(ChannelName.SMS, "+15550100"))
    failure = caught.value
    assert isinstance(failure, TemporaryFailure | PermanentFailure)
    assert failure.status_code == status
    assert getattr(failure, "retry_after_s", None) == retry_after


async def test_twilio_wrong_token_is_permanent_and_not_in_the_error(twilio: FakeTwilio) -> None:
    with pytest.raises(PermanentFailure) as caught:
        await TwilioSmsChannel(twilio_account(twilio, token="tw-wrong-secret")).send(msg(ChannelName.SMS, "+1555"))
    assert caught.value.status_code == 401
    assert "tw-wrong-secret" not in str(caught.value)


async def test_twilio_unreachable_is_temporary() -> None:
    account = TwilioAccount("AC1", "t", "+1", base_url=f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(TemporaryFailure, match="unreachable"):
        await TwilioSmsChannel(account).send(msg(ChannelName.SMS, "+15550100"))
