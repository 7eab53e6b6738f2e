"""Monitors with history, for the console's monitors area: Monitors applied through the real loader
(`spectra.reconcile.apply_set`, labels and Secret references included), their states as the result writer
saves them, raw checks, hourly rollups and incidents.

    ids = apply_monitors(session, [monitor("api", "acme", labels={"team": "web"})], secrets=SECRETS)
    set_state(session, ids["acme/api"], "eu", "down", at=NOW)
    hourly(session, ids["acme/api"], "eu", start=NOW - 24 * HOUR, hours=24, mean_ms=80)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.api import API_VERSION, parse_object
from spectra.reconcile import MANIFEST_SOURCE, apply_set
from spectra.store import HourlyRollup, Incident, Monitor, insert_results, rollup_days, save_states
from spectra.store.results import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS
from tests.factories.store import SecretTable, state_row

HOUR: Final = timedelta(hours=1)
NOW: Final = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
HEADER_SECRET: Final = "s3cr3t-header-value-9f2"  # what the Secret of a monitor's Authorization header holds
PUSH_SECRET_VALUE: Final = "push-token-value-77aa"  # a heartbeat monitor's token, as its Secret holds it


def secrets_for(namespace: str) -> SecretTable:
    return SecretTable(
        {(namespace, "api-auth", "header"): HEADER_SECRET, (namespace, "cron-push", "token"): PUSH_SECRET_VALUE}
    )


def monitor(
    name: str,
    namespace: str,
    *,
    labels: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
    locations: Sequence[str] = ("eu",),
) -> dict[str, Any]:
    """A Monitor manifest (http `https://<name>.example` unless `spec` says otherwise)."""
    body = dict(spec or {"type": "http", "http": {"url": f"https://{name}.example/health"}})
    body.setdefault("locations", list(locations))
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": "Monitor", "metadata": metadata, "spec": body}


def secret_header_spec(name: str) -> dict[str, Any]:
    """An http Monitor whose Authorization header comes from Secret `api-auth` key `header`."""
    header = {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "api-auth", "key": "header"}}}
    return {"type": "http", "http": {"url": f"https://{name}.example/", "headers": [header]}}


def heartbeat_spec() -> dict[str, Any]:
    """A heartbeat Monitor whose push token comes from Secret `cron-push` key `token`."""
    token_from = {"secretKeyRef": {"name": "cron-push", "key": "token"}}
    return {"type": "heartbeat", "interval": "1m", "heartbeat": {"grace": "1m", "tokenFrom": token_from}}


def apply_monitors(
    session: Session,
    bodies: Iterable[Mapping[str, Any]],
    *,
    secrets: SecretTable | None = None,
    source: str = "",
    files: Mapping[tuple[str, str, str], str] | None = None,
) -> dict[str, int]:
    """Apply the manifests as one set (nothing pruned); {"namespace/name": monitor id} of every monitor.
    `files`: the manifest file of each, by (kind, namespace, name), as `spectra run` finds them."""
    resources = [parse_object(dict(body)) for body in bodies]
    apply_set(
        session, resources, source or MANIFEST_SOURCE, prune=False, secrets=secrets or SecretTable({}), files=files
    )
    session.flush()
    rows = session.execute(sa.select(Monitor.namespace, Monitor.name, Monitor.resource_id))
    return {f"{ns}/{name}": monitor_id for ns, name, monitor_id in rows}


def set_state(
    session: Session, monitor_id: int, location: str, state: str, *, at: datetime = NOW, **extra: Any
) -> None:
    """The state of one (monitor, location) as the writer saves it, stored (reported) `at`."""
    save_states(session, [state_row(monitor_id, location, state, at=at, reported_at=at, **extra)])


def hourly(
    session: Session,
    monitor_id: int,
    location: str,
    *,
    start: datetime,
    hours: int,
    mean_ms: float = 100.0,
    max_ms: float | None = None,
    checks: int = 120,
    down: int = 0,
    degraded: int = 0,
    histogram: Sequence[int] | None = None,
) -> None:
    """`hours` hourly rollups from `start`, each with `checks` checks at `mean_ms` mean latency; `histogram`
    (from `latency_histogram`) gives each its latency histogram, else it has none (as before 0011). The
    daily rollups of those days are summed from them, as the store's `rollup` does."""
    counters = dict(zip(HISTOGRAM_COLUMNS, histogram or [0] * len(HISTOGRAM_COLUMNS), strict=True))
    session.add_all(
        HourlyRollup(
            **counters,
            monitor_id=monitor_id,
            location=location,
            bucket_start=start + k * HOUR,
            checks_total=checks,
            checks_up=checks - down - degraded,
            checks_degraded=degraded,
            checks_down=down,
            latency_count=checks,
            latency_sum_ms=mean_ms * checks,
            latency_max_ms=max_ms if max_ms is not None else mean_ms * 2,
        )
        for k in range(hours)
    )
    session.flush()
    rollup_days(session, start, start + hours * HOUR)


def latency_histogram(per_bucket: Mapping[int | None, int]) -> list[int]:
    """The rollup's cumulative counters from counts per bucket, by upper bound in ms (None: above 10 s):
    `{100: 60, 250: 60}` is 60 latencies in (50, 100] ms and 60 in (100, 250] ms."""
    unknown = set(per_bucket) - {*LATENCY_BOUNDS_MS, None}
    if unknown:
        raise ValueError(f"not a bucket bound: {sorted(map(str, unknown))}")
    out, running = [], 0
    for bound in LATENCY_BOUNDS_MS:
        running += per_bucket.get(bound, 0)
        out.append(running)
    return [*out, running + per_bucket.get(None, 0)]


def checks(
    session: Session, monitor_id: int, location: str, *, count: int, end: datetime = NOW, status: str = "up"
) -> None:
    """`count` raw checks, one a minute up to `end`, reason "check k"."""
    insert_results(
        session,
        [
            {
                "monitor_id": monitor_id,
                "location": location,
                "checked_at": end - timedelta(minutes=k),
                "status": status,
                "latency_ms": 50.0 + k,
                "reason": f"check {k}",
            }
            for k in range(count)
        ],
    )


def incident(
    session: Session, monitor_id: int, namespace: str, name: str, *, code: str, state: str = "open",
    opened_at: datetime = NOW,
) -> int:  # fmt: skip
    row = Incident(
        code=code,
        namespace=namespace,
        monitor_id=monitor_id,
        monitor_name=name,
        title=f"{name} is down",
        severity="critical",
        state=state,
        opened_at=opened_at,
        resolved_at=opened_at + HOUR if state == "resolved" else None,
    )
    session.add(row)
    session.flush()
    return row.id
