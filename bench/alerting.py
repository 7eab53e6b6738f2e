"""Alert latency: a confirmed failure written to monitor_states -> the provider receives the page.

The real path in one process on a fresh SQLite file: manifests (a Contact with email and phone, an
EscalationPolicy whose first step pages it by email and SMS at once, N http monitors) applied by the
loader; the real Alerter and Sender; the real sendgrid and twilio libraries talking to the local stand-ins
of tests/support/providers.py. Each sample marks one monitor down in monitor_states as the probe writer does
after failureThreshold (t0, after the commit) and waits until both providers have received its page
(t1 = when the stand-in's handler ran). Samples start at random phases of the alerter's poll.
Target (the table in bench/README.md): p95 <= 2000 ms.
"""

from __future__ import annotations

import asyncio
import functools
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.probe import percentile

TARGET_P95_MS = 2000.0
SAMPLES = {"quick": 10, "default": 60, "full": 200}
POLL_S = 0.5  # the alerter's poll interval (its default), passed explicitly: samples start at random phases of it
CONTACT_PHONE = "+15550001111"


def policy_manifests(channels: str) -> str:
    """Alice (email and phone) and the policy `primary`: step 0 pages her at once through `channels`
    (e.g. "email, sms"), step 1 by email an hour later (so only step 0 is measured)."""
    return f"""\
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {{name: alice}}
spec: {{displayName: Alice, email: alice@example.com, phone: "{CONTACT_PHONE}", channels: [email, sms]}}
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {{name: primary}}
spec:
  steps:
    - delay: 0s
      targets: [{{contact: alice}}]
      channels: [{channels}]
    - delay: 1h
      targets: [{{contact: alice}}]
      channels: [email]
"""


MONITOR = """\
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: m{i}}}
spec:
  type: http
  interval: 60s
  failureThreshold: 1
  escalationPolicyRef: {{name: primary}}
  http: {{url: "http://127.0.0.1:9/m{i}"}}
"""


def _more(items: Callable[[], list[Any]], before: int) -> bool:
    return len(items()) > before


async def _wait(condition: Callable[[], bool], timeout_s: float) -> float | None:
    """perf_counter when `condition` became true (polled every ms in this loop), None on timeout."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if condition():
            return time.perf_counter()
        await asyncio.sleep(0.001)
    return None


async def alert_latency(mode: str, samples: int | None = None) -> dict[str, Any]:  # noqa: PLR0915 - one scenario
    from sqlalchemy import select

    from spectra.alerting import Alerter
    from spectra.manifests import load_paths
    from spectra.notify.outbox import Sender
    from spectra.notify.registry import channels_from_env
    from spectra.reconcile import MANIFEST_SOURCE, apply_set
    from spectra.store import Monitor, make_engine, save_states, session_factory, upgrade
    from spectra.tokens import Tokens
    from tests.factories.store import state_row
    from tests.support.providers import sendgrid_fake, twilio_fake

    count = samples or SAMPLES.get(mode, SAMPLES["default"])
    with tempfile.TemporaryDirectory(prefix="spectra-bench-alerting-") as tmp:
        folder = Path(tmp) / "manifests"
        folder.mkdir()
        text = policy_manifests("email, sms") + "".join(MONITOR.format(i=i) for i in range(count))
        (folder / "alerting.yaml").write_text(text)
        manifests = load_paths([folder])
        if manifests.errors:
            raise RuntimeError("; ".join(map(str, manifests.errors)))
        url = f"sqlite:///{Path(tmp) / 'spectra.db'}"
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            apply_set(session, [item.resource for item in manifests.resources], MANIFEST_SOURCE, secrets=manifests)
        with sessions() as session:
            ids = {name: int(rid) for rid, name in session.execute(select(Monitor.resource_id, Monitor.name))}
        monitor_ids = [ids[f"m{i}"] for i in range(count)]
        now = datetime.now(UTC)
        with sessions.begin() as session:
            save_states(session, [state_row(mid, "default", "up", at=now) for mid in monitor_ids])

        async with sendgrid_fake() as sendgrid, twilio_fake() as twilio:
            env = {
                "SENDGRID_API_KEY": sendgrid.api_key,
                "SPECTRA_SENDGRID_URL": sendgrid.url,
                "SPECTRA_EMAIL_FROM": "spectra@example.com",
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "TWILIO_FROM_NUMBER": "+15559990000",
                "SPECTRA_TWILIO_URL": twilio.url,
            }
            sender = Sender(sessions, channels_from_env(env), secrets=manifests)
            alerter = Alerter(
                sessions,
                secrets=manifests,
                tokens=Tokens("bench-key"),
                public_url="http://127.0.0.1:8080",
                sender=sender,
                poll_interval_s=POLL_S,
            )
            poll_s = POLL_S

            def twilio_texts() -> list[Any]:
                return twilio.sent("Messages")

            tasks = [asyncio.create_task(alerter.run()), asyncio.create_task(sender.run())]
            email_ms: list[float] = []
            sms_ms: list[float] = []
            all_ms: list[float] = []
            timeouts = 0
            try:
                await asyncio.sleep(poll_s * 2)  # the alerter takes its lease and sees every monitor up
                rng = random.Random(7)  # noqa: S311 - sampling phases, not secrets
                for mid in monitor_ids:
                    await asyncio.sleep(rng.uniform(0, poll_s))
                    emails, texts = len(sendgrid.accepted()), len(twilio_texts())

                    def write_down(monitor_id: int = mid) -> None:
                        with sessions.begin() as session:
                            save_states(session, [state_row(monitor_id, "default", "down", at=datetime.now(UTC))])

                    await asyncio.to_thread(write_down)
                    t0 = time.perf_counter()
                    got_email = asyncio.create_task(_wait(functools.partial(_more, sendgrid.accepted, emails), 15))
                    got_sms = asyncio.create_task(_wait(functools.partial(_more, twilio_texts, texts), 15))
                    t_email, t_sms = await got_email, await got_sms
                    if t_email is None or t_sms is None:
                        timeouts += 1
                        continue
                    email_ms.append((t_email - t0) * 1000)
                    sms_ms.append((t_sms - t0) * 1000)
                    all_ms.append((max(t_email, t_sms) - t0) * 1000)
            finally:
                await alerter.stop()
                await sender.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                engine.dispose()

    def summary(values: list[float]) -> dict[str, float | None]:
        quantiles = {f"p{q}": _round(percentile(values, q)) for q in (50, 95, 99)}
        return quantiles | {"max": _round(max(values, default=None))}

    p95 = percentile(all_ms, 95)
    return {
        "value": _round(p95),
        "unit": "ms (p95, confirmed down in monitor_states -> every page of step 1 at the providers)",
        "target": f"p95 <= {TARGET_P95_MS:.0f}",
        "met": None if p95 is None else (p95 <= TARGET_P95_MS and timeouts == 0),
        "alert_latency_ms": summary(all_ms),
        "email_ms": summary(email_ms),
        "sms_ms": summary(sms_ms),
        "samples": len(all_ms),
        "timeouts": timeouts,
        "alerter_poll_interval_s": poll_s,
        "setup": "SQLite file, real Alerter + Sender, sendgrid/twilio libraries -> local stand-ins, one process",
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
