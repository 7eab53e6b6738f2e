"""What every checker shares: the egress guard, secrets, one TLS context, and the evaluator processes
for expectations whose cost the tenant controls (started on first use).

Creating an SSLContext costs about 20 ms, so a worker makes it once and every check reuses it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from spectra.api.base import ValueSource
from spectra.api.monitor import MonitorSpec
from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.probe.evaluator import Evaluators
from spectra.probe.lag import LoopLag
from spectra.probe.scrubbing import note_resolved

MAX_BODY_BYTES = 1024 * 1024  # bodies are read up to this size; assertions see no more
# Time one check's bodyRegex and jsonPath expectations may take together, in an evaluator process.
EVALUATION_BUDGET_S = 1.0


class MissingSecret(LookupError):
    """A secretKeyRef that cannot be answered; the message names the reference, never a value."""


@dataclass(frozen=True)
class CheckRequest:
    """One monitor to check: its identity and validated spec."""

    namespace: str
    name: str
    spec: MonitorSpec
    monitor_id: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def default_ssl_context() -> ssl.SSLContext:
    """Trust from the system store, or from SSL_CERT_FILE / SSL_CERT_DIR when set (tests, private CAs)."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"), capath=os.environ.get("SSL_CERT_DIR"))


@dataclass
class CheckContext:
    egress: EgressGuard = field(default_factory=lambda: EgressGuard(EgressPolicy()))
    secrets: SecretResolver = field(default_factory=NoSecrets)
    ssl_context: ssl.SSLContext = field(default_factory=default_ssl_context)
    max_body_bytes: int = MAX_BODY_BYTES
    evaluation_budget_s: float = EVALUATION_BUDGET_S
    # Heartbeat monitors: when the monitor last received a push (None: never).
    last_push: Callable[[CheckRequest], Awaitable[datetime | None]] | None = None
    artifacts_dir: Path = field(default_factory=lambda: Path("artifacts"))
    # The worker's measure of its own lateness; without one (spectra check) no failure is voided.
    loop_lag: LoopLag | None = None
    _resources: dict[str, Any] = field(default_factory=dict)

    def secret(self, namespace: str, source: ValueSource) -> str:
        ref = source.secret_key_ref
        value = self.secrets.get(namespace, ref.name, ref.key)
        if value is None:
            raise MissingSecret(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        note_resolved(value)  # run_check takes it out of the result, whatever the target echoes
        return value

    def shared(self, name: str, factory: Callable[[], Any]) -> Any:
        """One instance per context of an expensive helper (the browser, a TLS context)."""
        if name not in self._resources:
            self._resources[name] = factory()
        return self._resources[name]

    def evaluators(self) -> Evaluators:
        evaluators: Evaluators = self.shared("evaluators", lambda: Evaluators(self.evaluation_budget_s))
        return evaluators

    async def aclose(self) -> None:
        for resource in list(self._resources.values()):
            closer = getattr(resource, "aclose", None)
            if closer is not None:
                await closer()
        self._resources.clear()
