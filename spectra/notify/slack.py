"""Slack incoming webhook: POST {"text": ...} to the (secret) webhook URL.

Every value put into the text is escaped as Slack asks (`&`, `<`, `>`), so what a target answered (the
reason) or a manifest says cannot ping a channel (`<!channel>`), mention anyone, or show a link of its own
(`<https://evil|Acknowledge>`) next to the real one; only our own Acknowledge link is markup. Link
previews are off. The URL is a tenant's Secret: it passes the egress guard like a webhook's (`HttpPoster`).
"""

from __future__ import annotations

import json

from spectra.domain.egress import EgressPolicy
from spectra.notify.channel import ChannelName, Delivery, Message
from spectra.notify.webhook import HttpPoster

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(value: object) -> str:
    """``value`` as literal Slack text: control sequences (`<!here>`, `<url|label>`, `<@user>`) are inert."""
    return str(value).translate(_ESCAPES)


def slack_text(message: Message) -> str:
    facts = message.facts
    if facts.get("code") and facts.get("monitor"):
        severity = slack_escape(str(facts.get("severity") or "alert").upper())
        monitor = slack_escape(facts["monitor"]).replace("`", "'")  # inside a code span
        line = f"*[{severity}] {slack_escape(facts['code'])}* `{monitor}`"
        line += f" is *{slack_escape(facts.get('state') or 'opened')}*"
        if facts.get("reason"):
            line += f": {slack_escape(facts['reason'])}"
        if facts.get("ack_url") and facts.get("state") in {"opened", "escalated"}:
            line += f"\n<{slack_escape(facts['ack_url'])}|Acknowledge>"
        return line
    return slack_escape(message.text or message.subject)


class SlackChannel:
    name = ChannelName.SLACK

    def __init__(self, *, egress: EgressPolicy, timeout_s: float = 10.0) -> None:
        self._http = HttpPoster("Slack", timeout_s, egress)

    async def send(self, message: Message) -> Delivery:
        body = json.dumps({"text": slack_text(message), "unfurl_links": False, "unfurl_media": False}).encode()
        response = await self._http.post(message.recipient, body, {"Content-Type": "application/json"})
        return Delivery(status_code=response.status_code)

    async def aclose(self) -> None:
        await self._http.aclose()
