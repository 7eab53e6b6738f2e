"""Prometheus metrics of the alerting side: leadership, passes, incidents and steps, and the outbox.

What an operator alerts on (docs/reliability.md): `spectra_alerter_leader` summed over replicas is not 1;
`spectra_alerter_pass_failures_total` growing; `spectra_outbox_oldest_pending_seconds` above a few
minutes; `spectra_pages_given_up` growing (the sender's own counter is
`spectra_notifications_given_up_total`, notify/metrics.py); `spectra_global_maintenance` 1 for longer
than planned (every page is held).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from spectra.runtime.metrics import Metrics

_PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AlertingMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.leader = Gauge("spectra_alerter_leader", "1 while this replica is the active alerter.", registry=r)
        self.leadership_changes = Counter(
            "spectra_alerter_leadership_changes_total", "Times this replica became or stopped being active.", registry=r
        )
        self.pass_seconds = Histogram(
            "spectra_alerter_pass_seconds", "Time one alerter pass took.", buckets=_PASS_BUCKETS, registry=r
        )
        self.pass_failures = Counter(
            "spectra_alerter_pass_failures_total", "Alerter passes that failed (the next pass retries).", registry=r
        )
        self.incidents_opened = Counter(
            "spectra_incidents_opened_total", "Incidents opened or reopened, by how.", ["how"], registry=r
        )
        self.steps_fired = Counter("spectra_escalation_steps_fired_total", "Escalation steps fired.", registry=r)
        self.global_maintenance = Gauge(
            "spectra_global_maintenance",
            "1 while global maintenance holds every page (read by the active alerter).",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "spectra_outbox_pending", "Notifications waiting to be delivered (read by the active alerter).", registry=r
        )
        self.outbox_oldest = Gauge(
            "spectra_outbox_oldest_pending_seconds",
            "Age of the oldest notification waiting to be delivered (0 when none).",
            registry=r,
        )
        self.pages_given_up = Gauge(
            "spectra_pages_given_up",
            "Notifications given up or refused by the provider, in the store (read by the active alerter).",
            registry=r,
        )
