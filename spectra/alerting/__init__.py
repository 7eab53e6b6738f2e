"""The alerter: confirmation, incidents, maintenance suppression, escalation (one active per database)."""

from __future__ import annotations

from spectra.alerting.alerter import LEASE_NAME, Alerter, Waker
from spectra.alerting.incidents import acknowledge, find_incident_by_code, resolve_incident, was_paged

__all__ = ["LEASE_NAME", "Alerter", "Waker", "acknowledge", "find_incident_by_code", "resolve_incident", "was_paged"]
