"""On-call schedule resolution: who is on call at an instant, and when that next changes.

`on_call` and `next_handoff` take a `ScheduleSpec`; all instants are aware datetimes (results in UTC).
"""

from __future__ import annotations

from spectra.oncall.schedules import HANDOFF_HORIZON, next_handoff, on_call

__all__ = ["HANDOFF_HORIZON", "next_handoff", "on_call"]
