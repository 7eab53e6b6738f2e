"""Monitor: what to check, how often, from where, and whom to page when it fails."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from spectra.api.addresses import TargetError, check_host, check_url
from spectra.api.base import (
    AGE_COLUMN,
    DNS_LABEL,
    ApiModel,
    FieldError,
    KindInfo,
    LocalObjectReference,
    PrinterColumn,
    Resource,
    StatusBase,
    ValueSource,
)
from spectra.api.durations import Duration

DEFAULT_INTERVAL = timedelta(seconds=60)
DEFAULT_TIMEOUT = timedelta(seconds=10)
DEFAULT_LOCATION = "default"

# Header names whose values are credentials: these must come from a Secret.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|passwd|api[-_]?key|signature", re.I)
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


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


def _host(value: str) -> str:
    try:
        return check_host(value)
    except TargetError as exc:
        raise ValueError(str(exc)) from None


def _url(value: str) -> str:
    try:
        return check_url(value)
    except TargetError as exc:
        raise ValueError(str(exc)) from None


# --- http -------------------------------------------------------------------------------------


class HttpHeader(ApiModel):
    """A request header; credentials come from a Secret through `valueFrom`."""

    name: str = Field(description="Header name.", pattern=_HEADER_NAME, max_length=256)
    value: str | None = Field(default=None, description="Literal value, for headers that are not secret.")
    value_from: ValueSource | None = Field(default=None, description="Value from a Secret key.")

    @model_validator(mode="after")
    def _one_source(self) -> HttpHeader:
        if (self.value is None) == (self.value_from is None):
            raise FieldError("value", "give exactly one of value or valueFrom")
        if self.value is not None and _SECRET_HEADER.search(self.name):
            raise FieldError(
                "value",
                f"header {self.name} carries a credential: use valueFrom.secretKeyRef, not an inline value",
            )
        return self


class JsonPathExpectation(ApiModel):
    path: str = Field(description="JSONPath into the response body, e.g. `$.status`.", pattern=r"^\$", max_length=512)
    equals: str | int | float | bool | None = Field(description="The value found there must equal this.")


class HttpExpect(ApiModel):
    status: list[int] | None = Field(
        default=None,
        description="Accepted status codes. Default: any 2xx.",
        min_length=1,
        max_length=64,
    )
    body_contains: str | None = Field(default=None, description="The body must contain this text.", max_length=4096)
    body_regex: str | None = Field(
        default=None,
        description="The body must match this regular expression (searched, time-capped).",
        max_length=4096,
    )
    json_path: list[JsonPathExpectation] = Field(
        default_factory=list, description="Values the JSON body must hold.", max_length=32
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers that must contain these values (names case-insensitive).",
    )
    max_response_time: Duration | None = Field(default=None, description="Slower answers count as degraded.")
    certificate_min_days: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="On https, fewer days of certificate validity left counts as degraded "
        "(expiry is reported either way).",
    )

    @field_validator("status")
    @classmethod
    def _codes(cls, value: list[int] | None) -> list[int] | None:
        for code in value or []:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code (100-599)")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class HttpCheck(ApiModel):
    url: str = Field(description="http:// or https:// URL to request; no credentials inside.", max_length=2048)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    headers: list[HttpHeader] = Field(default_factory=list, description="Request headers.", max_length=64)
    body: str | None = Field(default=None, description="Request body.", max_length=65536)
    follow_redirects: bool = Field(default=True, description="Follow redirects (each hop passes the egress guard).")
    max_redirects: int = Field(default=5, ge=0, le=20, description="Most redirects followed.")
    expect: HttpExpect = Field(default_factory=HttpExpect, description="What makes the check pass.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value)


# --- tcp / udp -----------------------------------------------------------------------------------


class StreamExpect(ApiModel):
    contains: str | None = Field(default=None, description="The answer must contain this text.", max_length=4096)


class TcpCheck(ApiModel):
    host: str = Field(description="Host name or IP address.", max_length=253)
    port: int = Field(ge=1, le=65535, description="TCP port.")
    tls: bool = Field(default=False, description="Speak TLS after connecting (verifies the certificate).")
    send: str | None = Field(default=None, description="Text to send once connected.", max_length=4096)
    expect: StreamExpect = Field(default_factory=StreamExpect, description="What the answer must hold.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host(value)


class UdpCheck(ApiModel):
    host: str = Field(description="Host name or IP address.", max_length=253)
    port: int = Field(ge=1, le=65535, description="UDP port.")
    send: str = Field(description="Datagram to send.", min_length=1, max_length=4096)
    expect: StreamExpect = Field(default_factory=StreamExpect, description="What the answer must hold.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host(value)


# --- dns -------------------------------------------------------------------------------------------


class DnsExpect(ApiModel):
    values: list[str] = Field(
        default_factory=list, description="Every one of these must be among the answers.", max_length=64
    )
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"] = Field(
        default="NOERROR", description="Expected response code."
    )


class DnsCheck(ApiModel):
    name: str = Field(description="Name to resolve.", min_length=1, max_length=253)
    record_type: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"] = Field(
        default="A", description="Record type to ask for."
    )
    server: str | None = Field(
        default=None,
        description="Resolver as host or host:port. Default: the system resolver.",
        max_length=260,
    )
    expect: DnsExpect = Field(default_factory=DnsExpect, description="What the answer must hold.")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, port = value, "53"
        match = re.fullmatch(r"\[(.+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
        if match:
            host = match.group(1) or match.group(3)
            port = match.group(2) or match.group(4)
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is out of range (1-65535)")
        _host(host)
        return value


# --- icmp / tls ------------------------------------------------------------------------------------


class IcmpExpect(ApiModel):
    max_packet_loss: float = Field(default=50.0, ge=0, le=100, description="Packet loss above this percentage is down.")
    max_rtt: Duration | None = Field(default=None, description="A slower average round trip counts as degraded.")


class IcmpCheck(ApiModel):
    host: str = Field(description="Host name or IP address to ping.", max_length=253)
    count: int = Field(default=3, ge=1, le=20, description="Echo requests per check.")
    expect: IcmpExpect = Field(default_factory=IcmpExpect, description="Loss and round-trip limits.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host(value)


class TlsExpect(ApiModel):
    certificate_min_days: int = Field(default=14, ge=0, le=3650, description="Fewer days of validity left is down.")


class TlsCheck(ApiModel):
    host: str = Field(description="Host name or IP address.", max_length=253)
    port: int = Field(default=443, ge=1, le=65535, description="TCP port.")
    server_name: str | None = Field(
        default=None,
        description="SNI and the name the certificate must match. Default: host.",
        max_length=253,
    )
    expect: TlsExpect = Field(default_factory=TlsExpect, description="Certificate limits.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host(value)


# --- heartbeat -------------------------------------------------------------------------------------


class HeartbeatCheck(ApiModel):
    grace: Duration = Field(
        default=timedelta(seconds=60),
        description="Extra time after the interval before a missing push is down.",
    )
    token_from: ValueSource = Field(
        description="The secret token of the push URL `/api/v1/heartbeat/{token}`, from a Secret key."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise FieldError("token", "the push token is a secret: use tokenFrom.secretKeyRef, not an inline value")
        return data


# --- browser ---------------------------------------------------------------------------------------


class FillStep(ApiModel):
    selector: str = Field(description="CSS or Playwright selector of the input.", min_length=1, max_length=1024)
    value: str | None = Field(default=None, description="Text to type (not for secrets).", max_length=4096)
    value_from: ValueSource | None = Field(default=None, description="Text to type, from a Secret key.")

    @model_validator(mode="after")
    def _one_source(self) -> FillStep:
        if (self.value is None) == (self.value_from is None):
            raise FieldError("value", "give exactly one of value or valueFrom")
        if self.value is not None and re.search(r"pass(word)?|secret|token|otp", self.selector, re.I):
            raise FieldError("value", "this field looks like a secret: use valueFrom.secretKeyRef")
        return self


class PressStep(ApiModel):
    selector: str = Field(description="Element to focus.", min_length=1, max_length=1024)
    key: str = Field(description="Key to press, e.g. Enter.", min_length=1, max_length=64)


class ExpectTextStep(ApiModel):
    selector: str = Field(description="Element whose text is read.", min_length=1, max_length=1024)
    text: str = Field(description="Text the element must contain.", min_length=1, max_length=4096)


_STEP_KEYS = ("goto", "click", "fill", "press", "waitFor", "expectText", "expectURL", "screenshot")


class BrowserStep(ApiModel):
    """One declarative step; exactly one key per step. No user code ever runs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[" + ", ".join(f"has(self.{k})" for k in _STEP_KEYS) + "].filter(x, x).size() == 1",
                    "message": "each step has exactly one of " + ", ".join(_STEP_KEYS),
                }
            ]
        }
    )

    goto: str | None = Field(default=None, description="Open this http(s) URL.", max_length=2048)
    click: str | None = Field(default=None, description="Click the element matching this selector.", max_length=1024)
    fill: FillStep | None = Field(default=None, description="Type text into an input.")
    press: PressStep | None = Field(default=None, description="Press a key in an element.")
    wait_for: str | None = Field(default=None, description="Wait until this selector is visible.", max_length=1024)
    expect_text: ExpectTextStep | None = Field(default=None, description="An element must contain a text.")
    expect_url: str | None = Field(
        default=None,
        alias="expectURL",
        description="The page URL must match this glob pattern.",
        max_length=2048,
    )
    screenshot: str | None = Field(
        default=None, description="Save a screenshot under this name.", pattern=r"^[A-Za-z0-9._-]{1,64}$"
    )

    @field_validator("goto")
    @classmethod
    def _check_goto(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> BrowserStep:
        given = [key for key in _STEP_KEYS if getattr(self, _attr(key)) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"each step has exactly one of {', '.join(_STEP_KEYS)} (found: {found})")
        return self


def _attr(key: str) -> str:
    return {"waitFor": "wait_for", "expectText": "expect_text", "expectURL": "expect_url"}.get(key, key)


class BrowserCheck(ApiModel):
    steps: list[BrowserStep] = Field(
        description="Steps run in order in headless Chromium.", min_length=1, max_length=50
    )

    @field_validator("steps")
    @classmethod
    def _starts_with_goto(cls, steps: list[BrowserStep]) -> list[BrowserStep]:
        if steps and steps[0].goto is None:
            raise ValueError("the first step must be goto: URL")
        return steps


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
    def target(self) -> str:
        """What is checked, for tables and columns (never holds secrets: URLs cannot carry credentials)."""
        if self.http is not None:
            return self.http.url
        if self.tcp is not None:
            return f"{self.tcp.host}:{self.tcp.port}"
        if self.udp is not None:
            return f"udp://{self.udp.host}:{self.udp.port}"
        if self.dns is not None:
            return f"{self.dns.name} {self.dns.record_type}"
        if self.icmp is not None:
            return self.icmp.host
        if self.tls is not None:
            return f"{self.tls.host}:{self.tls.port}"
        if self.browser is not None:
            return self.browser.steps[0].goto or ""
        return "heartbeat"


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
            PrinterColumn("Uptime", ".status.uptime24h", description="Uptime over 24 hours"),
            PrinterColumn("Last Check", ".status.lastCheck", type="date"),
            AGE_COLUMN,
        ),
    )
    kind: Literal["Monitor"] = Field(description="Monitor.")
    spec: MonitorSpec = Field(description="What to check and how.")
    status: MonitorStatus | None = Field(default=None, description="Live facts, written by the operator.")
