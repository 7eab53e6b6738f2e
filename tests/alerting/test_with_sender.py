"""The alerter with the real outbox Sender: pages and resolve notices reach the channels once each."""

from __future__ import annotations

from spectra.notify.channel import ChannelName, Delivery, Message
from spectra.notify.outbox import Sender
from tests.factories.alerting import World
from tests.support.databases import sqlite_only


class Recording:
    def __init__(self, name: ChannelName) -> None:
        self.name = name
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Delivery:
        self.sent.append(message)
        return Delivery(provider_message_id=f"id-{len(self.sent)}", status_code=202)


@sqlite_only
async def test_pages_and_notices_are_delivered_once(world: World) -> None:
    channels = {name: Recording(name) for name in (ChannelName.SMS, ChannelName.VOICE, ChannelName.EMAIL)}
    sender = Sender(world.sessions, dict(channels), secrets=world.secrets)
    alerter = world.alerter(sender=sender)
    world.set_state("web", "down")
    await world.tick(alerter)
    assert await sender.send_due_once() == 2
    world.clock.advance(minutes=10)
    await world.tick(alerter)
    await world.tick(alerter)
    world.set_state("web", "up")
    await world.tick(alerter)
    while await sender.send_due_once():
        pass
    delivered = [(m.channel.value, m.recipient, m.facts["state"]) for c in channels.values() for m in c.sent]
    assert sorted(delivered) == [
        ("email", "bob@example.com", "escalated"),
        ("email", "bob@example.com", "resolved"),
        ("sms", "+4915112345678", "opened"),
        ("sms", "+4915112345678", "resolved"),
        ("voice", "+4915112345678", "opened"),
        ("voice", "+4915112345678", "resolved"),
    ]
    assert all(row.status == "sent" for row in world.outbox())
