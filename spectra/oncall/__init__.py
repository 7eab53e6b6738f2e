"""On-call schedule resolution: who is on call at an instant, and when that next changes.

`on_call`, `next_handoff` and `timeline` take a `ScheduleSpec`; all instants are aware datetimes
(results in UTC). Overrides kept in the store (taken in the console or the API) join a spec's own
through `with_stored`/`resolved` (spectra.oncall.stored) before it is resolved.
"""

from __future__ import annotations

from spectra.oncall.schedules import HANDOFF_HORIZON, Shift, next_handoff, on_call, timeline
from spectra.oncall.stored import (
    StoredOverride,
    every_stored_override,
    resolved,
    stored_overrides,
    with_stored,
)

__all__ = [
    "HANDOFF_HORIZON",
    "Shift",
    "StoredOverride",
    "every_stored_override",
    "next_handoff",
    "on_call",
    "resolved",
    "stored_overrides",
    "timeline",
    "with_stored",
]
