"""Webhook and Slack deliveries pass the egress guard: a tenant's Secret cannot aim them inside the network.

Each case posts to a local receiver on 127.0.0.1 (or an address that would lead inside) under the strict
(cluster) policy and the standalone one. Refusals all read the same, with no address, port or error of
the internal target; names are answered by the stub resolver of tests/domain/test_egress.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from spectra.api.addresses import IPAddress
from spectra.domain.egress import EgressPolicy, EgressRefused
from spectra.notify.channel import Channel, ChannelName, PermanentFailure, TemporaryFailure
from spectra.notify.registry import channels_from_env
from spectra.notify.slack import SlackChannel
from spectra.notify.webhook import WebhookChannel, delivery_failure
from tests.factories.notify import msg
from tests.support.fake_dns import FakeDns
from tests.support.processes import free_port
from tests.support.providers import FakeReceiver, receiver_fake

STRICT = EgressPolicy()
STANDALONE = EgressPolicy.standalone()
KEY = b"spectra-signing-key"
REBINDING_NAME = "hooks.tenant.example"  # answered by the stub resolver


@pytest.fixture
async def hook() -> AsyncIterator[FakeReceiver]:
    async with receiver_fake(None) as fake:  # takes any post: what matters is whether one arrives
        yield fake


def make_channel(kind: ChannelName, policy: EgressPolicy) -> WebhookChannel | SlackChannel:
    if kind is ChannelName.WEBHOOK:
        return WebhookChannel(KEY, egress=policy, timeout_s=10)
    return SlackChannel(egress=policy, timeout_s=10)


def provider(kind: ChannelName) -> str:
    return "webhook" if kind is ChannelName.WEBHOOK else "Slack"


async def send(channel: WebhookChannel | SlackChannel, kind: ChannelName, url: str) -> None:
    try:
        await channel.send(msg(kind, url))
    finally:
        await channel.aclose()


# URL of the receiver on port P, spelled the ways a tenant could: each leads to 127.0.0.1 or further inside.
INSIDE: dict[str, Callable[[int], str]] = {
    "loopback": lambda port: f"http://127.0.0.1:{port}/hook",
    "ipv4-mapped-loopback": lambda port: f"http://[::ffff:127.0.0.1]:{port}/hook",
    "6to4-loopback": lambda port: f"http://[2002:7f00:1::]:{port}/hook",
    "decimal-loopback": lambda port: f"http://2130706433:{port}/hook",
    "name-resolving-to-loopback": lambda port: f"http://{REBINDING_NAME}:{port}/hook",
    "single-label-name": lambda port: f"http://localhost:{port}/hook",
    "cluster-service-name": lambda port: f"http://alertmanager.monitoring.svc.cluster.local:{port}/hook",
    "private-10": lambda port: f"http://10.0.0.1:{port}/hook",
    "metadata-aws": lambda port: "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "metadata-alibaba": lambda port: "http://100.100.100.200/latest/meta-data/",
    "metadata-azure-wireserver": lambda port: "http://168.63.129.16/machine?comp=goalstate",
    "metadata-gce-name": lambda port: "http://metadata.google.internal/computeMetadata/v1/",
    "metadata-mapped": lambda port: "http://[::ffff:169.254.169.254]/latest/meta-data/",
}
# Refused whatever the policy: link-local and cloud metadata.
ALWAYS_REFUSED = {name for name in INSIDE if name.startswith("metadata")}
# Reached under the standalone policy (spectra run: this machine and its network are the user's own).
# (aiohttp itself refuses the decimal spelling: it is judged by the guard only to refuse it the same way.)
STANDALONE_REACHES = ["loopback", "ipv4-mapped-loopback", "name-resolving-to-loopback"]


@pytest.mark.parametrize("kind", [ChannelName.WEBHOOK, ChannelName.SLACK])
@pytest.mark.parametrize("case", list(INSIDE))
async def test_strict_policy_refuses_every_way_inside_with_one_reason(
    kind: ChannelName, case: str, hook: FakeReceiver, dns: FakeDns
) -> None:
    dns.set(REBINDING_NAME, ["127.0.0.1"])
    port = int(hook.url.rsplit(":", 1)[1])
    with pytest.raises(PermanentFailure) as refused:
        await send(make_channel(kind, STRICT), kind, INSIDE[case](port))
    # One text for every case: no address, no port, nothing about what listens there.
    assert str(refused.value) == f"{provider(kind)} delivery refused by the egress policy"
    assert refused.value.status_code is None
    assert hook.requests == []


@pytest.mark.parametrize("kind", [ChannelName.WEBHOOK, ChannelName.SLACK])
@pytest.mark.parametrize("case", sorted(ALWAYS_REFUSED))
async def test_standalone_policy_still_refuses_metadata(kind: ChannelName, case: str) -> None:
    with pytest.raises(PermanentFailure) as refused:
        await send(make_channel(kind, STANDALONE), kind, INSIDE[case](80))
    assert str(refused.value) == f"{provider(kind)} delivery refused by the egress policy"


@pytest.mark.parametrize("kind", [ChannelName.WEBHOOK, ChannelName.SLACK])
@pytest.mark.parametrize("case", STANDALONE_REACHES)
async def test_standalone_policy_delivers_to_this_machine(
    kind: ChannelName, case: str, hook: FakeReceiver, dns: FakeDns
) -> None:
    dns.set(REBINDING_NAME, ["127.0.0.1"])
    port = int(hook.url.rsplit(":", 1)[1])
    await send(make_channel(kind, STANDALONE), kind, INSIDE[case](port))
    [request] = hook.requests
    assert (request.path, request.status) == ("/hook", 200)


async def test_a_name_with_one_inside_answer_is_refused_whole(hook: FakeReceiver, dns: FakeDns) -> None:
    # A public answer beside a loopback one is a rebinding trick: the name is refused, not half-used.
    dns.set(REBINDING_NAME, ["93.184.216.34", "127.0.0.1"])
    port = int(hook.url.rsplit(":", 1)[1])
    with pytest.raises(PermanentFailure, match=r"^webhook delivery refused by the egress policy$"):
        await send(make_channel(ChannelName.WEBHOOK, STRICT), ChannelName.WEBHOOK, f"http://{REBINDING_NAME}:{port}/h")
    assert hook.requests == []


async def test_the_answer_checked_is_the_one_connected_to(hook: FakeReceiver, dns: FakeDns) -> None:
    # Rebinding: every lookup is judged anew (no DNS cache), so a name that turns internal is refused then.
    port = int(hook.url.rsplit(":", 1)[1])
    dns.set(REBINDING_NAME, ["127.0.0.1"])
    channel = make_channel(ChannelName.WEBHOOK, EgressPolicy(allow_loopback=True))
    try:
        await channel.send(msg(ChannelName.WEBHOOK, f"http://{REBINDING_NAME}:{port}/first"))
        dns.set(REBINDING_NAME, ["10.1.2.3"])
        with pytest.raises(PermanentFailure, match="refused by the egress policy"):
            await channel.send(msg(ChannelName.WEBHOOK, f"http://{REBINDING_NAME}:{port}/second"))
    finally:
        await channel.aclose()
    assert [request.path for request in hook.requests] == ["/first"]


@asynccontextmanager
async def inside_port(behaviour: str) -> AsyncIterator[int]:
    """A port on 127.0.0.1 that is closed, resets every connection, or accepts and never answers."""
    if behaviour == "closed":
        yield free_port()
        return
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "resets":
            writer.transport.abort()
        else:
            held.append(writer)  # keep it open, say nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("behaviour", ["closed", "resets", "silent"])
async def test_failures_inside_read_the_same_whatever_the_port_did(behaviour: str) -> None:
    # Allowed inside (standalone), a failed delivery must still not tell an open port from a closed one.
    async with inside_port(behaviour) as port:
        channel = WebhookChannel(KEY, egress=STANDALONE, timeout_s=3)
        with pytest.raises(TemporaryFailure) as failed:
            await send(channel, ChannelName.WEBHOOK, f"http://127.0.0.1:{port}/hook")
    assert str(failed.value) == "webhook unreachable"


PUBLIC = ipaddress.ip_address("93.184.216.34")
INTERNAL = ipaddress.ip_address("10.0.0.7")


@pytest.mark.parametrize(
    ("error", "reached", "kind", "reason"),
    [
        (EgressRefused("10.0.0.7: private"), [], PermanentFailure, "webhook delivery refused by the egress policy"),
        (TimeoutError(), [PUBLIC], TemporaryFailure, "webhook did not answer in time"),
        (ConnectionRefusedError(), [PUBLIC], TemporaryFailure, "webhook unreachable: ConnectionRefusedError"),
        (ConnectionResetError(), [PUBLIC], TemporaryFailure, "webhook unreachable: ConnectionResetError"),
        (TimeoutError(), [INTERNAL], TemporaryFailure, "webhook unreachable"),
        (ConnectionRefusedError(), [INTERNAL], TemporaryFailure, "webhook unreachable"),
        (ConnectionResetError(), [PUBLIC, INTERNAL], TemporaryFailure, "webhook unreachable"),
    ],
    ids=[
        "refused",
        "public-timeout",
        "public-refused",
        "public-reset",
        "internal-timeout",
        "internal-refused",
        "internal-reset",
    ],
)
def test_what_a_failure_says(
    error: BaseException, reached: list[IPAddress], kind: type[Exception], reason: str
) -> None:
    # Public targets keep useful errors; internal ones (only reachable when allowed) say "unreachable".
    failure = delivery_failure("webhook", error, reached, STANDALONE)
    assert type(failure) is kind
    assert str(failure) == reason


def test_a_refusal_wrapped_by_aiohttp_is_still_a_refusal() -> None:
    try:
        try:
            raise EgressRefused("10.0.0.7: private addresses are not allowed")
        except EgressRefused as inner:
            raise OSError("Cannot connect to host") from inner
    except OSError as wrapped:
        failure = delivery_failure("Slack", wrapped, [], STRICT)
    assert isinstance(failure, PermanentFailure)
    assert str(failure) == "Slack delivery refused by the egress policy"


async def test_channels_from_the_environment_are_strict_unless_told(hook: FakeReceiver) -> None:
    url = f"{hook.url}/hook"
    strict: Channel = channels_from_env({"SPECTRA_SECRET_KEY": KEY.decode()})[ChannelName.WEBHOOK]
    with pytest.raises(PermanentFailure, match="refused by the egress policy"):
        await strict.send(msg(ChannelName.WEBHOOK, url))
    allowed = channels_from_env({"SPECTRA_SECRET_KEY": KEY.decode()}, egress=STANDALONE)[ChannelName.WEBHOOK]
    delivery = await allowed.send(msg(ChannelName.WEBHOOK, url))
    for channel in (strict, allowed):
        assert isinstance(channel, WebhookChannel)
        await channel.aclose()
    assert delivery.status_code == 200
    assert len(hook.requests) == 1
