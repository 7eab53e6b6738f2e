"""Monitor: what to check, how often, from where, and whom to page when it fails."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from spectra.api.base import (
    AGE_COLUMN,
    DNS_LABEL,
    READY_COLUMN,
    ApiModel,
    FieldError,
    KindInfo,
    LocalObjectReference,
    PrinterColumn,
    Resource,
    StatusBase,
)
from spectra.api.checks.browser import BrowserCheck, BrowserStep, ExpectTextStep, FillStep, PressStep
from spectra.api.checks.dns import DnsCheck, DnsExpect
from spectra.api.checks.heartbeat import HeartbeatCheck
from spectra.api.checks.http import HttpCheck, HttpExpect, HttpHeader, JsonPathExpectation
from spectra.api.checks.icmp import IcmpCheck, IcmpExpect
from spectra.api.checks.tcp import StreamExpect, TcpCheck
from spectra.api.checks.tls import TlsCheck, TlsExpect
from spectra.api.checks.udp import UdpCheck
from spectra.api.durations import Duration

DEFAULT_INTERVAL = timedelta(seconds=60)
DEFAULT_TIMEOUT = timedelta(seconds=10)
DEFAULT_LOCATION = "default"


class MonitorType(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    UDP = "udp"
    DNS = "dns"
    ICMP = "icmp"
    TLS = "tls"
    HEARTBEAT = "heartbeat"
    BROWSER = "browser"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


# --- the monitor -----------------------------------------------------------------------------------

_BLOCKS = tuple(t.value for t in MonitorType)


# `type: X` goes with block X and no other block.
_TYPE_RULES: list[JsonValue] = [
    {"rule": f"(self.type == '{t}') == has(self.{t})", "message": f"type {t} needs the {t} block, and only that one"}
    for t in _BLOCKS
]
_MONITOR_RULES: list[JsonValue] = [
    {
        "rule": "!has(self.timeout) || duration(self.timeout) < duration(has(self.interval) ? self.interval : '60s')",
        "message": "timeout must be shorter than interval",
        "fieldPath": ".timeout",
    },
    {
        "rule": "!has(self.quorum) || self.quorum <= "
        "(has(self.locations) && size(self.locations) > 0 ? size(self.locations) : 1)",
        "message": "quorum cannot exceed the number of locations",
        "fieldPath": ".quorum",
    },
    *_TYPE_RULES,
]


CheckBlock = HttpCheck | TcpCheck | UdpCheck | DnsCheck | IcmpCheck | TlsCheck | HeartbeatCheck | BrowserCheck


class MonitorSpec(ApiModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _MONITOR_RULES})

    type: MonitorType = Field(description="Check type; the block of the same name holds its settings.")
    description: str | None = Field(default=None, description="What this monitor watches, for people.", max_length=1024)
    interval: Duration = Field(default=DEFAULT_INTERVAL, description="Time between checks (fixed rate).")
    timeout: Duration | None = Field(
        default=None,
        description="Time one check may take; must be shorter than interval. Default: 10s, at most half the interval.",
    )
    locations: list[str] = Field(
        default_factory=list,
        description="Probe locations that run the check. Default: the one default location.",
        max_length=32,
    )
    quorum: int | None = Field(
        default=None,
        ge=1,
        description="Locations that must see a failure to confirm it. Default: a majority of locations.",
    )
    failure_threshold: int = Field(
        default=2, ge=1, le=100, description="Consecutive failures before the monitor is down."
    )
    success_threshold: int = Field(default=1, ge=1, le=100, description="Consecutive successes before it is up again.")
    escalation_policy_ref: LocalObjectReference | None = Field(
        default=None,
        description="EscalationPolicy that pages people when this monitor goes down. Default: nobody is paged.",
    )
    severity: Severity = Field(default=Severity.CRITICAL, description="critical, warning or info.")
    paused: bool = Field(default=False, description="Stop checking and alerting without deleting the monitor.")
    http: HttpCheck | None = Field(default=None, description="Settings of an http check.")
    tcp: TcpCheck | None = Field(default=None, description="Settings of a tcp check.")
    udp: UdpCheck | None = Field(default=None, description="Settings of a udp check.")
    dns: DnsCheck | None = Field(default=None, description="Settings of a dns check.")
    icmp: IcmpCheck | None = Field(default=None, description="Settings of an icmp (ping) check.")
    tls: TlsCheck | None = Field(default=None, description="Settings of a tls certificate check.")
    heartbeat: HeartbeatCheck | None = Field(default=None, description="Settings of a heartbeat (push) monitor.")
    browser: BrowserCheck | None = Field(default=None, description="Steps of a browser check.")

    @field_validator("locations")
    @classmethod
    def _locations(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(DNS_LABEL, name):
                raise ValueError(f"location {name!r} must be a DNS label (lower-case letters, digits, '-')")
        if len(set(value)) != len(value):
            raise ValueError("locations are listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSpec:
        if getattr(self, self.type) is None:
            raise FieldError(self.type, f"type is {self.type} but the {self.type} block is missing")
        extra = [block for block in _BLOCKS if block != self.type and getattr(self, block) is not None]
        if extra:
            raise FieldError(extra[0], f"type is {self.type}, so the {extra[0]} block does not belong here")
        if self.timeout is not None and self.timeout >= self.interval:
            raise FieldError("timeout", f"timeout must be shorter than interval ({self.interval.total_seconds():g}s)")
        if self.quorum is not None and self.quorum > len(self.effective_locations):
            raise FieldError(
                "quorum",
                f"quorum {self.quorum} is more than the {len(self.effective_locations)} location(s) listed",
            )
        return self

    @property
    def effective_locations(self) -> list[str]:
        return self.locations or [DEFAULT_LOCATION]

    @property
    def effective_timeout(self) -> timedelta:
        return self.timeout if self.timeout is not None else min(DEFAULT_TIMEOUT, self.interval / 2)

    @property
    def effective_quorum(self) -> int:
        return self.quorum if self.quorum is not None else len(self.effective_locations) // 2 + 1

    @property
    def block(self) -> CheckBlock:
        """The settings block of this monitor's type (validation guarantees it is there)."""
        found: CheckBlock | None = getattr(self, self.type)
        assert found is not None
        return found

    @property
    def target(self) -> str:
        """What is checked, for tables and columns (never holds secrets: URLs cannot carry credentials)."""
        return self.block.target


class MonitorState(StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    PENDING = "pending"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"


class MonitorStatus(StatusBase):
    state: MonitorState | None = Field(default=None, description="up, down, degraded, pending, paused or maintenance.")
    target: str | None = Field(default=None, description="What is checked (URL, host:port, name).")
    last_check: datetime | None = Field(default=None, description="When the last check ran.")
    last_latency_ms: float | None = Field(default=None, description="Latency of the last check in milliseconds.")
    uptime24h: str | None = Field(
        default=None, alias="uptime24h", description="Uptime over the last 24 hours, e.g. 99.95%."
    )
    uptime30d: str | None = Field(default=None, alias="uptime30d", description="Uptime over the last 30 days.")
    open_incident: str | None = Field(default=None, description="Code of the open incident, if any.")
    certificate_expiry: datetime | None = Field(default=None, description="When the served certificate expires.")
    certificate_days_left: int | None = Field(default=None, description="Days until that certificate expires.")


class Monitor(Resource):
    """A check of one target from one or more locations."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="monitors",
        short_names=("mon", "mons"),
        columns=(
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Target", ".status.target"),
            PrinterColumn("State", ".status.state"),
            PrinterColumn("Uptime 24h", ".status.uptime24h", description="Uptime over the last 24 hours"),
            # An age ("12s"): a last check is in the past (a `date` column cannot show a future time).
            PrinterColumn("Last Check", ".status.lastCheck", type="date", description="Time since the last check"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["Monitor"] = Field(description="Monitor.")
    spec: MonitorSpec = Field(description="What to check and how.")
    status: MonitorStatus | None = Field(default=None, description="Live facts, written by the operator.")


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_LOCATION",
    "DEFAULT_TIMEOUT",
    "BrowserCheck",
    "BrowserStep",
    "CheckBlock",
    "DnsCheck",
    "DnsExpect",
    "ExpectTextStep",
    "FillStep",
    "HeartbeatCheck",
    "HttpCheck",
    "HttpExpect",
    "HttpHeader",
    "IcmpCheck",
    "IcmpExpect",
    "JsonPathExpectation",
    "Monitor",
    "MonitorSpec",
    "MonitorState",
    "MonitorStatus",
    "MonitorType",
    "PressStep",
    "Severity",
    "StreamExpect",
    "TcpCheck",
    "TlsCheck",
    "TlsExpect",
    "UdpCheck",
]
