"""Prometheus metrics of the outbox Sender: what it sent, what failed, what it gave up, what it still holds.

Registered on the registry of the process that runs a Sender (`spectra run`, `spectra alerter`); the
outbox's backlog (rows waiting, the oldest one's age) is a database figure: `outbox.outbox_health`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sent = Counter(
            "spectra_notifications_sent_total",
            "Notifications the provider accepted, by channel.",
            ["channel"],
            registry=r,
        )
        self.failed = Counter(
            "spectra_notification_failures_total",
            "Delivery attempts that failed temporarily (5xx, 429, network, timeout) and will be retried, by channel.",
            ["channel"],
            registry=r,
        )
        self.given_up = Counter(
            "spectra_notifications_given_up_total",
            "Notifications never delivered, by channel and reason: refused (4xx, bad recipient) or expired "
            "(temporary failures for the whole retry window).",
            ["channel", "reason"],
            registry=r,
        )
        self.in_flight = Gauge("spectra_notifications_in_flight", "Sends waiting for a provider's answer.", registry=r)
        self.unrecorded = Gauge(
            "spectra_notification_outcomes_unrecorded",
            "Delivery outcomes held in memory because the database did not take them yet (retried until it does).",
            registry=r,
        )
