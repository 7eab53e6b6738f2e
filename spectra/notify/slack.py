"""Slack incoming webhook: POST {"text": ...} to the (secret) webhook URL."""

from __future__ import annotations

import json

from spectra.notify.channel import ChannelName, Delivery, Message
from spectra.notify.webhook import HttpPoster


def slack_text(message: Message) -> str:
    facts = message.facts
    if facts.get("code") and facts.get("monitor"):
        line = f"*[{str(facts.get('severity') or 'alert').upper()}] {facts['code']}* `{facts['monitor']}`"
        line += f" is *{facts.get('state') or 'opened'}*"
        if facts.get("reason"):
            line += f": {facts['reason']}"
        if facts.get("ack_url") and facts.get("state") in {"opened", "escalated"}:
            line += f"\n<{facts['ack_url']}|Acknowledge>"
        return line
    return message.text or message.subject


class SlackChannel:
    name = ChannelName.SLACK

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self._http = HttpPoster("Slack", timeout_s)

    async def send(self, message: Message) -> Delivery:
        body = json.dumps({"text": slack_text(message)}).encode()
        response = await self._http.post(message.recipient, body, {"Content-Type": "application/json"})
        return Delivery(status_code=response.status_code)

    async def aclose(self) -> None:
        await self._http.aclose()
