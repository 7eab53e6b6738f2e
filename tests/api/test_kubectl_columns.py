"""`kubectl get` of every kind as a user sees it: the real kubectl against the emulator, compared with golden files.

The emulator answers kubectl's Table request as kube-apiserver does (tests/support/kube_tables.py). Each
object's `.status` is what the operator writes: its facts (`spectra.operator.statuses.collect` over a store
holding the same objects, with check results, uptime and an open incident) and its Ready condition
(`spectra.operator.apply.status_patch`), written through the status subresource. Ages (the `date` columns
AGE and LAST CHECK) must vary and read `<age>` in the golden files; everything else is compared as printed.

The golden files are tests/golden/kubectl-get/<plural>.txt: rewrite them with `SPECTRA_UPDATE_GOLDEN=1`
and review the diff (CONTRIBUTING.md).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api import KINDS, parse_object
from spectra.api.crd import crd_for
from spectra.operator.apply import Outcome, status_patch
from spectra.operator.statuses import Facts, Key, collect
from spectra.reconcile import CLUSTER_SOURCE, apply_set
from spectra.store import Incident, insert_results, rollup, save_states
from spectra.store import Monitor as MonitorRow
from tests.support.databases import sqlite_only
from tests.support.kube import ClusterEmulator
from tests.support.kube_tables import read_table
from tests.support.paths import REPO

GOLDEN = REPO / "tests" / "golden" / "kubectl-get"
UPDATE = os.environ.get("SPECTRA_UPDATE_GOLDEN") == "1"
NAMESPACE = "shop"
NOW = datetime(2026, 3, 2, 10, 30, 12, tzinfo=UTC)  # a Monday, in the past: ages stay ages
APPLIED = Outcome(True, "Applied", "in the store and scheduled", applied=True)  # what the operator writes
AGE = re.compile(r"\d+[smhdy](\d+[smhd])?")  # apimachinery's HumanDuration: 45s, 3m10s, 20h, 2d1h, 2y1d

MANIFESTS = """
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: alice, namespace: shop}
spec:
  displayName: Alice Liddell
  email: alice@example.com
  phone: "+4915112345678"
  channels: [sms, email]
  timeZone: Europe/Berlin
---
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: bob, namespace: shop}
spec:
  displayName: Bob Example
  email: bob@example.com
  channels: [email]
---
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: primary, namespace: shop}
spec:
  timeZone: Europe/Berlin
  layers:
    - name: weekly
      participants: [alice, bob]
      start: 2026-01-05
      rotation: 1w
      handoffTime: "09:00"
---
apiVersion: spectra.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: primary, namespace: shop}
spec:
  steps:
    - delay: 0s
      targets: [{schedule: primary}]
      channels: [sms, email]
    - delay: 15m
      targets: [{contact: bob}]
    - delay: 30m
      targets: [{contact: alice}, {contact: bob}]
  repeat: 1
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: storefront, namespace: shop, labels: {team: shop}}
spec:
  type: http
  interval: 30s
  http: {url: "https://shop.example.com/"}
  escalationPolicyRef: {name: primary}
---
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: checkout-api, namespace: shop, labels: {team: shop}}
spec:
  type: http
  interval: 30s
  http: {url: "https://api.shop.example.com/healthz"}
  escalationPolicyRef: {name: primary}
---
apiVersion: spectra.dev/v1alpha1
kind: StatusPage
metadata: {name: shop, namespace: shop}
spec:
  slug: shop
  title: Shop status
  hostnames: [status.shop.example.com]
  groups:
    - name: Shop
      components:
        - {name: Storefront, monitors: [storefront]}
        - {name: Checkout, monitors: [checkout-api]}
---
apiVersion: spectra.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: weekly-patching, namespace: shop}
spec:
  message: Weekly operating-system patching.
  recurrence:
    rrule: FREQ=WEEKLY;BYDAY=SU;BYHOUR=3;BYMINUTE=0
    start: 2026-01-04T03:00:00+01:00
    duration: 1h
    timeZone: Europe/Berlin
  monitorSelector:
    matchLabels: {team: shop}
---
apiVersion: spectra.dev/v1alpha1
kind: Organization
metadata: {name: acme}
spec:
  displayName: ACME Corp.
  namespaces: [shop]
  plan: {maxMonitors: 50, minInterval: 30s, maxStatusPages: 2}
  suspended: false
"""
DOCUMENTS: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(MANIFESTS) if doc]


# --- the operator's view: facts from a store holding the same objects ------------------------------


def _monitor_id(session: Session, name: str) -> int:
    found = session.scalar(
        select(MonitorRow.resource_id).where(MonitorRow.namespace == NAMESPACE, MonitorRow.name == name)
    )
    assert found is not None
    return found


def operator_facts(session: Session, now: datetime) -> dict[Key, Facts]:
    """What the operator publishes at `now`: storefront up, checkout-api down with an open incident."""
    apply_set(session, [parse_object(doc) for doc in DOCUMENTS], CLUSTER_SOURCE, prune=False)
    for name, state, latency, history in (
        ("storefront", "up", 87.3, "u" * 40),
        ("checkout-api", "down", None, "u" * 39 + "x"),
    ):
        monitor = _monitor_id(session, name)
        checked = now - timedelta(seconds=12)
        state_row = {
            "monitor_id": monitor,
            "location": "default",
            "state": state,
            "last_status": state,
            "consecutive_failures": 0 if state == "up" else 2,
            "consecutive_successes": 1 if state == "up" else 0,
            "last_check_at": checked,
            "last_latency_ms": latency,
            "last_reason": "" if state == "up" else "status 503, expected 200",
            "changed_at": checked,
            "facts": None,
        }
        save_states(session, [state_row])
        names = {"u": "up", "x": "down"}
        insert_results(
            session,
            [
                {
                    "monitor_id": monitor,
                    "location": "default",
                    "checked_at": checked - timedelta(minutes=len(history) - 1 - i),
                    "status": names[mark],
                    "latency_ms": 80.0,
                }
                for i, mark in enumerate(history)
            ],
        )
    session.add(
        Incident(
            code="K7Q2M",
            namespace=NAMESPACE,
            monitor_id=_monitor_id(session, "checkout-api"),
            monitor_name="checkout-api",
            title="checkout-api is down",
            severity="critical",
            state="open",
            opened_at=now - timedelta(minutes=1),
            escalation_policy="primary",
        )
    )
    rollup(session, now - timedelta(days=1), now + timedelta(seconds=1))
    session.commit()
    return collect(session, now, source=CLUSTER_SOURCE)


def publish(cluster: ClusterEmulator, facts: Mapping[Key, Facts], now: datetime) -> None:
    """Apply the objects with kubectl, then write each `.status` as the operator does (a merge patch)."""
    cluster.create("v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.kubectl("apply", "-f", "-", input=MANIFESTS)
    for doc in DOCUMENTS:
        kind, name = doc["kind"], doc["metadata"]["name"]
        namespace = doc["metadata"].get("namespace")
        key = (kind, namespace or "", name)
        resource = f"spectra.dev/v1alpha1/{KINDS[kind].info.plural}"
        stored = cluster.existing(resource, namespace, name)
        known = facts[key].merged() if key in facts else {}
        status = {**known, **status_patch(APPLIED, stored, now)}
        where = ["-n", namespace] if namespace else []
        patch = json.dumps({"status": status})
        cluster.kubectl("patch", kind.lower(), name, *where, "--subresource=status", "--type=merge", "-p", patch)


# --- what kubectl printed ------------------------------------------------------------------------


def commands(kind: str) -> list[list[str]]:
    plural = KINDS[kind].info.plural
    if not KINDS[kind].info.namespaced:
        return [["get", plural]]
    return [["get", plural, "-n", NAMESPACE], ["get", plural, "-A"]]


def date_headers(kind: str) -> set[str]:
    columns = crd_for(KINDS[kind])["spec"]["versions"][0]["additionalPrinterColumns"]
    return {column["name"].upper() for column in columns if column["type"] == "date"}


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells aligned as kubectl's tabwriter does (minimum width 6, padding 3, the last column unpadded)."""
    table = [list(headers), *map(list, rows)]
    widths = [max(6, max(len(line[i]) for line in table) + 3) for i in range(len(headers) - 1)]
    lines = ["".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + line[-1] for line in table]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def normalise(printed: str, ages: set[str]) -> tuple[list[str], list[list[str]], str]:
    """(headers, rows, the table with every age cell `<age>`); checks the parse reproduces kubectl's layout."""
    headers, rows = read_table(printed)
    assert render(headers, rows) == "\n".join(line.rstrip() for line in printed.splitlines()) + "\n", printed
    for row in rows:
        for index, header in enumerate(headers):
            if header in ages:
                assert AGE.fullmatch(row[index]), f"{header} of {row[0]} is {row[index]!r}, not an age"
                row[index] = "<age>"
    return headers, rows, render(headers, rows)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with SPECTRA_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"`kubectl get` changed ({path}); if on purpose: SPECTRA_UPDATE_GOLDEN=1\n{text}"


# --- tests ---------------------------------------------------------------------------------------


@sqlite_only
def test_kubectl_get_of_every_kind_matches_its_golden_file(cluster: ClusterEmulator, session: Session) -> None:
    publish(cluster, operator_facts(session, NOW), NOW)
    for kind, model in KINDS.items():
        sections = []
        for args in commands(kind):
            printed = cluster.kubectl(*args).stdout
            assert "<invalid>" not in printed, printed
            assert "<unknown>" not in printed, printed
            headers, rows, table = normalise(printed, date_headers(kind))
            assert len(headers) == len(set(headers)), f"duplicate headers: {headers}"
            assert rows, printed
            for row in rows:
                empty = [header for header, cell in zip(headers, row, strict=True) if not cell]
                assert not empty, f"{kind} {row[0]}: nothing under {empty}"
            sections.append(f"$ kubectl {' '.join(args)}\n{table}")
        check_golden(f"{model.info.plural}.txt", "\n".join(sections))


@sqlite_only
def test_future_times_read_as_rfc3339_text(cluster: ClusterEmulator, session: Session) -> None:
    """The next handoff and the window's end are in the future: kubectl shows the times, never <invalid>."""
    now = datetime.now(UTC)
    facts = operator_facts(session, now)
    publish(cluster, facts, now)
    schedule = facts[("Schedule", NAMESPACE, "primary")].merged()
    window = facts[("MaintenanceWindow", NAMESPACE, "weekly-patching")].merged()
    future = {
        ("schedules", "NEXT HANDOFF"): schedule["nextHandoff"],
        ("maintenancewindows", "START"): window["nextStart"],  # in the past while the window is active
        ("maintenancewindows", "END"): window["nextEnd"],
    }
    for (plural, header), time in future.items():
        printed = cluster.kubectl("get", plural, "-n", NAMESPACE).stdout
        assert "<invalid>" not in printed, printed
        headers, rows = read_table(printed)
        assert [row[headers.index(header)] for row in rows] == [time], printed
        assert header == "START" or datetime.fromisoformat(time) > now


def test_docs_list_each_kinds_columns() -> None:
    """docs/operator.md "What kubectl get shows" lists every kind's headers, in order."""
    text = (REPO / "docs" / "operator.md").read_text(encoding="utf-8")
    section = text.split("## What kubectl get shows", 1)[1].split("\n## ", 1)[0]
    for kind, model in KINDS.items():
        columns = crd_for(model)["spec"]["versions"][0]["additionalPrinterColumns"]
        headers = ", ".join(["NAME", *(column["name"].upper() for column in columns)])
        assert f"| {kind} | {headers} |" in section, f"{kind}: {headers}"
