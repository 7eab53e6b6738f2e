"""The monitors area's JSON shapes (camelCase on the wire, as the rest of /api/v1), for answers and the
OpenAPI document. Times are RFC 3339 strings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MonitorListQuery(_Model):
    state: str | None = Field(
        None, description="Only monitors in this combined state (up, down, degraded, pending, paused)."
    )
    type: str | None = Field(None, description="Only monitors of this type (http, tcp, ...).")
    namespace: str | None = Field(None, description="Only monitors of this namespace.")
    label: str | None = Field(None, description="`key=value`, or `key` for monitors that have the label.")


class ListLocationOut(_Model):
    location: str
    state: str
    last_check: str | None
    reporting: bool


class MonitorSummaryOut(_Model):
    """One monitor of `GET /api/v1/monitors` (spectra.web.monitors.monitor_json)."""

    namespace: str
    name: str
    type: str
    target: str
    paused: bool
    state: str
    last_check: str | None
    latency_ms: float | None
    reason: str
    locations: list[ListLocationOut]


class MonitorList(RootModel[list[MonitorSummaryOut]]):
    """`GET /api/v1/monitors`: a JSON array (its shape predates the cursor pages of the other lists)."""


class LocationOut(_Model):
    location: str
    state: str
    last_check: str | None
    reporting: bool
    latency_ms: float | None
    reason: str


class UptimeOut(_Model):
    window: str = Field(description="24h, 7d, 30d or 90d")
    percent: str | None = Field(description='"99.95%"; null without checks in the window')
    checks: int


class CertificateOut(_Model):
    expires_at: str
    days_left: int | None
    location: str


class IncidentOut(_Model):
    id: int
    code: str
    title: str
    severity: str
    state: str
    opened_at: str
    url: str = Field(description="The incident's console page.")


class MonitorDetail(_Model):
    namespace: str
    name: str
    type: str
    target: str
    paused: bool
    state: str
    last_check: str | None
    latency_ms: float | None
    reason: str
    labels: dict[str, str]
    interval_seconds: float
    timeout_seconds: float
    severity: str
    escalation_policy: str | None
    locations: list[LocationOut]
    uptime: list[UptimeOut]
    certificate: CertificateOut | None
    incidents: list[IncidentOut]
    source: str = Field(description='"manifests" (spectra run\'s files), "cluster", or another loader\'s name.')
    source_text: str
    source_file: str | None = Field(
        description="The manifest file the resource was read from, relative to the folder given to spectra run "
        "or spectra apply (or as given); null in the cluster, and until the files are applied again after "
        "migration 0011."
    )
    yaml: str = Field(description="The resource as applied, secrets shown as their references only.")


class ChecksQuery(_Model):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = None


class CheckOut(_Model):
    id: int
    location: str
    checked_at: str
    status: str
    latency_ms: float | None
    reason: str


class CheckPage(_Model):
    items: list[CheckOut]
    next: str | None


class LatencyQuery(_Model):
    days: int = Field(7, ge=1, le=90)


class LatencyPointOut(_Model):
    hour: str
    p50_ms: float | None = Field(
        description="Median, estimated from the hour's latency histogram; null without one (no latency, or an "
        "hour rolled up before histograms were kept)."
    )
    p95_ms: float | None = Field(description="95th percentile, estimated like p50Ms; never above maxMs.")
    max_ms: float | None
    mean_ms: float | None
    checks: int


class LatencySeriesOut(_Model):
    location: str
    points: list[LatencyPointOut]


class LatencyOut(_Model):
    days: int
    measures: list[str] = Field(
        description='What each point holds: ["p50Ms", "p95Ms", "maxMs", "meanMs"] (the hourly rollups).'
    )
    series: list[LatencySeriesOut]
