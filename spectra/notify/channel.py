"""The one interface every channel implements, and the message it delivers."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class ChannelName(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    WEBHOOK = "webhook"
    SLACK = "slack"
    CONSOLE = "console"


@dataclass(frozen=True)
class Message:
    """One message to one recipient through one channel.

    `recipient` is an email address, an E.164 number or a webhook URL (URLs are secrets: never logged).
    `idempotency_key` is (incident, step, recipient, channel) for pages; the outbox refuses a second
    message with the same key, and channels pass it to providers that accept one.
    """

    channel: ChannelName
    recipient: str
    subject: str
    text: str
    idempotency_key: str
    html: str | None = None
    incident_id: int | None = None
    # Facts a channel may render (incident code, monitor, state, reason, ack URL, severity, ...).
    facts: dict[str, Any] = field(default_factory=dict)
    # Extra headers for email (List-Unsubscribe etc.).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """What the provider said: its message id, for the record."""

    provider_message_id: str | None = None
    status_code: int | None = None


class TemporaryFailure(Exception):
    """Worth retrying (5xx, 429, network): `retry_after_s` when the provider said how long to wait."""

    def __init__(self, reason: str, *, status_code: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class PermanentFailure(Exception):
    """Not worth retrying (4xx other than 429, bad recipient): the message is dead."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code


class Channel(Protocol):
    name: ChannelName

    async def send(self, message: Message) -> Delivery:
        """Deliver or raise TemporaryFailure / PermanentFailure. Never logs secret values."""
        ...


# The threads that run providers' synchronous SDK calls (sendgrid, twilio) of the current task. The
# outbox Sender sets its own pool, so a hanging provider never takes a thread of asyncio's default pool,
# which the alerter's database work runs on.
_blocking_pool: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("blocking_pool", default=None)


@contextmanager
def blocking_calls_on(pool: Executor) -> Iterator[None]:
    """Within this block (of the current task), `run_blocking` runs its calls on `pool`."""
    token = _blocking_pool.set(pool)
    try:
        yield
    finally:
        _blocking_pool.reset(token)


async def run_blocking(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` in a thread: the pool set by `blocking_calls_on`, else asyncio's default pool."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_blocking_pool.get(), functools.partial(context.run, call, *args))
