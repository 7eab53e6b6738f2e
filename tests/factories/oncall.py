"""On-call test data: schedules built the way users write them (camelCase manifests), and instants."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spectra.api.schedule import ScheduleSpec


def schedule(
    *layers: dict[str, Any], zone: str = "Europe/Berlin", overrides: list[dict[str, str]] | None = None
) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"timeZone": zone, "layers": list(layers), "overrides": overrides or []})


def layer(
    participants: list[str],
    *,
    start: str = "2026-01-05",
    rotation: str = "1w",
    handoff: str = "09:00",
    restrictions: list[dict[str, Any]] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name or "-".join(participants),
        "participants": participants,
        "start": start,
        "rotation": rotation,
        "handoffTime": handoff,
        "restrictions": restrictions or [],
    }


def t(text: str) -> datetime:
    """An aware instant from ISO 8601 text with offset."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value
