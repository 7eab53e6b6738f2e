"""Slack incoming webhooks: a text with the acknowledge link, against the local receiver."""

from __future__ import annotations

import pytest

from spectra.domain.egress import EgressPolicy
from spectra.notify.channel import ChannelName
from spectra.notify.slack import SlackChannel, slack_text
from tests.factories.notify import ACK_URL, FACTS, msg
from tests.support.providers import receiver_fake


async def test_slack_posts_text() -> None:
    channel = SlackChannel(egress=EgressPolicy.standalone())
    async with receiver_fake(None) as slack:
        try:
            delivery = await channel.send(msg(ChannelName.SLACK, f"{slack.url}/services/T/B/X"))
        finally:
            await channel.aclose()
    [request] = slack.requests
    body = request.json()
    assert delivery.status_code == 200
    assert request.path == "/services/T/B/X"
    assert set(body) == {"text", "unfurl_links", "unfurl_media"}
    assert body["unfurl_links"] is False
    assert "K7Q2" in body["text"]
    assert f"<{ACK_URL}|Acknowledge>" in body["text"]


@pytest.mark.parametrize(
    ("reason", "inert"),
    [
        ("HTTP 503 <!channel> everyone look", "&lt;!channel&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("ping <@U024BE7LH>", "&lt;@U024BE7LH&gt;"),
        ("<https://evil.example/ack|Acknowledge>", "&lt;https://evil.example/ack|Acknowledge&gt;"),
        ("a & b > c", "a &amp; b &gt; c"),
    ],
)
def test_what_a_target_says_is_inert_text(reason: str, inert: str) -> None:
    text = slack_text(msg(ChannelName.SLACK, "secretref:default/slack/url", facts={**FACTS, "reason": reason}))
    assert inert in text
    assert reason not in text
    # The one piece of markup is our own link.
    assert text.count("<") == 1
    assert text.endswith(f"<{ACK_URL}|Acknowledge>")


def test_a_backtick_cannot_close_the_monitor_code_span() -> None:
    text = slack_text(msg(ChannelName.SLACK, "x", facts={**FACTS, "monitor": "default/a`<!channel>`"}))
    assert "`default/a'&lt;!channel&gt;'`" in text
