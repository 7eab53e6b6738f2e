"""Monitor specs (the `spec` of a Monitor, camelCase as in manifests) for tests that run real checks.

Targets on 127.0.0.1 that are up must never fail a check because the machine is busy (2 cores, other
test runs beside): `LOCAL_TIMEOUT` is seconds, and `LOCAL_INTERVAL` the next whole second above it
(a timeout must be shorter than the interval). A test about a timeout firing passes its own.

    tcp_spec(port)                                # every 3 s, 2 s to connect
    tcp_spec(port, interval="60s", timeout="5s")  # loaded, never run within the test
    heartbeat_spec(interval="1s", grace="500ms", failureThreshold=1)
"""

from __future__ import annotations

from typing import Any, Final

LOCAL_INTERVAL: Final = "3s"
LOCAL_INTERVAL_S: Final = 3.0
LOCAL_TIMEOUT: Final = "2s"

PUSH_TOKEN: Final = "push-token-1234"  # a heartbeat monitor's token, as its Secret would hold it
PUSH_SECRET: Final = ("default", "cron-push", "token")  # (namespace, Secret, key) that heartbeat_spec refers to


def tcp_spec(
    port: int, *, interval: str = LOCAL_INTERVAL, timeout: str = LOCAL_TIMEOUT, **extra: Any
) -> dict[str, Any]:
    """A tcp Monitor of 127.0.0.1:`port`; `extra` are further spec fields (paused, locations, ...)."""
    return {
        "type": "tcp",
        "interval": interval,
        "timeout": timeout,
        "tcp": {"host": "127.0.0.1", "port": port},
        **extra,
    }


def heartbeat_spec(interval: str = "1m", grace: str = "1m", **extra: Any) -> dict[str, Any]:
    """A heartbeat Monitor (namespace default) whose push token is in `PUSH_SECRET` (see `PUSH_TOKEN`)."""
    _, secret, key = PUSH_SECRET
    token_from = {"secretKeyRef": {"name": secret, "key": key}}
    return {"type": "heartbeat", "interval": interval, "heartbeat": {"grace": grace, "tokenFrom": token_from}, **extra}
