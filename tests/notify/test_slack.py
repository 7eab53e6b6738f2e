"""Slack incoming webhooks: a text with the acknowledge link, against the local receiver."""

from __future__ import annotations

from spectra.notify.channel import ChannelName
from spectra.notify.slack import SlackChannel
from tests.factories.notify import ACK_URL, msg
from tests.support.providers import receiver_fake


async def test_slack_posts_text() -> None:
    channel = SlackChannel()
    async with receiver_fake(None) as slack:
        try:
            delivery = await channel.send(msg(ChannelName.SLACK, f"{slack.url}/services/T/B/X"))
        finally:
            await channel.aclose()
    [request] = slack.requests
    body = request.json()
    assert delivery.status_code == 200
    assert request.path == "/services/T/B/X"
    assert set(body) == {"text"}
    assert "K7Q2" in body["text"]
    assert f"<{ACK_URL}|Acknowledge>" in body["text"]
