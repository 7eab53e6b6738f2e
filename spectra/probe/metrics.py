"""Prometheus metrics of a probe worker: checks, durations, states, scheduler lag, result buffering,
leases and the database's health as the worker sees it.

Only processes that run a worker (`spectra run`, `spectra probe`) create these, so no other process
exports scheduler figures that are always zero.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from spectra.probe.database_health import DatabaseHealth
from spectra.runtime.metrics import Metrics

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProbeMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.checks = Counter("spectra_checks_total", "Checks run, by type and result.", ["type", "status"], registry=r)
        self.duration = Histogram(
            "spectra_check_duration_seconds", "Time one check took.", ["type"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.lag = Histogram(
            "spectra_scheduler_lag_seconds",
            "How late checks started after their slot.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.missed = Counter("spectra_scheduler_missed_runs_total", "Slots skipped (check still running).", registry=r)
        self.states = Gauge("spectra_monitors", "Monitors by state.", ["state"], registry=r)
        self.state_changes = Counter(
            "spectra_state_changes_total", "Monitor state changes, by new state.", ["to"], registry=r
        )
        self.buffered = Gauge("spectra_results_buffered", "Results waiting for the database.", registry=r)
        self.dropped = Counter("spectra_results_dropped_total", "Results dropped: the buffer was full.", registry=r)
        self.skipped = Counter(
            "spectra_scheduler_skipped_runs_total",
            "Slots not checked because this worker's lease would not cover them (leases lapsed or moving).",
            registry=r,
        )
        self.lease_failures = Counter(
            "spectra_lease_renewal_failures_total", "Lease renewals that failed (retried within ~1 s).", registry=r
        )
        self.leases_held = Gauge("spectra_leases_held", "Monitors this worker holds a lease of.", registry=r)
        self.database_unreachable = Gauge(
            "spectra_database_unreachable_seconds",
            "How long the database has been failing this worker's round trips (0 while it answers).",
            registry=r,
        )
        self.database_success_age = Gauge(
            "spectra_database_last_success_age_seconds",
            "Seconds since a round trip to the database (a write, a lease renewal, a reload) last succeeded.",
            registry=r,
        )
        # The probe's own lateness (spectra.probe.lag): a starved or stopped worker says so here.
        self.loop_lag = Histogram(
            "spectra_probe_loop_lag_seconds",
            "How late the worker's event loop woke for its lag tick (every 0.1 s).",
            buckets=_LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.loop_stalls = Counter(
            "spectra_probe_stalls_total",
            "Lag ticks 1 s or more late: the probe process was stopped, paused or starved of CPU.",
            registry=r,
        )
        self.voided = Counter(
            "spectra_checks_voided_total",
            "Failed checks not counted against their target because the probe's own lag ate their time "
            "budget, by type and what followed (retried at once, or the slot ended as probe stalled).",
            ["type", "outcome"],
            registry=r,
        )
        # The labelled children each check counts into, looked up once: `.labels()` validates and locks.
        self._check_counters: dict[tuple[str, str], Counter] = {}
        self._check_durations: dict[str, Histogram] = {}

    def watch_database(self, health: DatabaseHealth) -> None:
        """Export ``health``'s figures, read at each scrape (a frozen database freezes no loop here)."""
        self.database_unreachable.set_function(lambda: health.unreachable_s)
        self.database_success_age.set_function(lambda: health.last_success_age_s)

    def observe_check(self, monitor_type: str, status: str, seconds: float | None) -> None:
        counter = self._check_counters.get((monitor_type, status))
        if counter is None:
            counter = self._check_counters[monitor_type, status] = self.checks.labels(monitor_type, status)
        counter.inc()
        if seconds is not None:
            duration = self._check_durations.get(monitor_type)
            if duration is None:
                duration = self._check_durations[monitor_type] = self.duration.labels(monitor_type)
            duration.observe(seconds)

    def set_states(self, counts: dict[str, int]) -> None:
        for state in ("up", "down", "degraded", "pending", "paused", "maintenance"):
            self.states.labels(state).set(counts.get(state, 0))
