"""The loader both modes share: applying is idempotent, changes are exact, removals delete rows."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.api import Resource, parse_object
from spectra.manifests import load_paths
from spectra.reconcile import CLUSTER_SOURCE, MANIFEST_SOURCE, apply_one, apply_set, delete_one
from spectra.store import CheckResult, MonitorLocation, insert_results
from spectra.store import Monitor as MonitorRow
from spectra.store import Resource as ResourceRow
from tests.support.paths import EXAMPLES


def load(*paths: Path) -> list[Resource]:
    result = load_paths(paths)
    assert result.ok, result.errors
    return [item.resource for item in result.resources]


def snapshot(session: Session) -> list[tuple[Any, ...]]:
    session.expire_all()
    rows = session.scalars(select(ResourceRow).order_by(ResourceRow.kind, ResourceRow.namespace, ResourceRow.name))
    return [(r.kind, r.namespace, r.name, r.generation, r.spec_hash, r.updated_at, r.spec) for r in rows]


def test_applying_twice_changes_nothing(session: Session) -> None:
    resources = load(EXAMPLES)
    first = apply_set(session, resources, MANIFEST_SOURCE)
    session.commit()
    assert len(first.created) == len(resources) == 30
    before = snapshot(session)

    second = apply_set(session, load(EXAMPLES), MANIFEST_SOURCE)
    session.commit()
    assert not second.changed
    assert len(second.unchanged) == 30
    assert snapshot(session) == before


def test_monitor_hot_columns_and_locations(session: Session) -> None:
    apply_set(session, load(EXAMPLES / "03-on-call"), MANIFEST_SOURCE)
    session.commit()
    row = session.scalars(select(MonitorRow).where(MonitorRow.name == "checkout")).one()
    assert (row.type, row.interval_ms, row.timeout_ms, row.quorum) == ("http", 30_000, 10_000, 2)
    assert (row.failure_threshold, row.success_threshold) == (3, 2)
    assert (row.escalation_policy, row.severity, row.paused) == ("primary", "critical", False)
    assert row.target == "https://shop.example.com/checkout/health"
    locations = session.scalars(select(MonitorLocation.location).where(MonitorLocation.monitor_id == row.resource_id))
    assert sorted(locations) == ["eu-west", "us-east"]


def test_change_updates_only_that_object(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    shutil.copytree(EXAMPLES / "03-on-call", folder)
    apply_set(session, load(folder), MANIFEST_SOURCE)
    session.commit()
    before = {row[2]: row for row in snapshot(session)}

    monitor = folder / "monitor.yaml"
    monitor.write_text(
        monitor.read_text()
        .replace("interval: 30s", "interval: 45s")
        .replace("[eu-west, us-east]", "[eu-west, ap-south]")
    )
    report = apply_set(session, load(folder), MANIFEST_SOURCE)
    session.commit()
    assert report.updated == ["Monitor/default/checkout"]
    assert len(report.unchanged) == len(before) - 1
    after = {row[2]: row for row in snapshot(session)}
    assert after["checkout"][3] == before["checkout"][3] + 1  # generation
    assert after["checkout"][6]["interval"] == "45s"
    assert {k: v for k, v in after.items() if k != "checkout"} == {k: v for k, v in before.items() if k != "checkout"}
    row = session.scalars(select(MonitorRow).where(MonitorRow.name == "checkout")).one()
    assert row.interval_ms == 45_000
    assert sorted(loc.location for loc in row.locations) == ["ap-south", "eu-west"]


def test_removing_a_manifest_removes_its_rows(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    shutil.copytree(EXAMPLES / "04-status-page", folder)
    apply_set(session, load(folder), MANIFEST_SOURCE)
    session.commit()
    website = session.scalars(select(MonitorRow).where(MonitorRow.name == "website")).one()
    insert_results(
        session,
        [
            {
                "monitor_id": website.resource_id,
                "location": "default",
                "checked_at": datetime(2026, 11, 1, tzinfo=UTC),
                "status": "up",
                "latency_ms": 12.0,
                "reason": "200 OK",
            }
        ],
    )
    session.commit()

    (folder / "monitors.yaml").write_text(
        (folder / "monitors.yaml").read_text().split("---\n", 1)[1]  # drop the first document: website
    )
    (folder / "statuspage.yaml").write_text(
        (folder / "statuspage.yaml").read_text().replace("monitors: [website]", "monitors: [payments-tls]")
    )
    report = apply_set(session, load(folder), MANIFEST_SOURCE)
    session.commit()
    assert report.deleted == ["Monitor/default/website"]
    assert session.scalar(select(func.count()).select_from(CheckResult)) == 0
    assert session.scalar(select(func.count()).select_from(MonitorRow).where(MonitorRow.name == "website")) == 0


def test_prune_only_touches_its_own_source(session: Session) -> None:
    apply_set(session, load(EXAMPLES / "01-http-monitor"), MANIFEST_SOURCE)
    cluster_monitor = parse_object(
        {
            "apiVersion": "spectra.dev/v1alpha1",
            "kind": "Monitor",
            "metadata": {"name": "from-cluster", "namespace": "prod", "generation": 7, "uid": "abc-123"},
            "spec": {"type": "tcp", "tcp": {"host": "db.example.com", "port": 5432}},
        }
    )
    apply_one(session, cluster_monitor, CLUSTER_SOURCE)
    session.commit()
    report = apply_set(session, [], MANIFEST_SOURCE)
    session.commit()
    assert report.deleted == ["Monitor/default/local-web"]
    remaining = session.scalars(select(ResourceRow)).all()
    assert [(r.name, r.generation, r.uid, r.source) for r in remaining] == [("from-cluster", 7, "abc-123", "cluster")]


def test_cluster_generation_is_taken_from_metadata(session: Session) -> None:
    metadata: dict[str, Any] = {"name": "ann", "namespace": "prod", "generation": 3}
    spec: dict[str, Any] = {"displayName": "Ann", "email": "ann@example.com"}
    body = {"apiVersion": "spectra.dev/v1alpha1", "kind": "Contact", "metadata": metadata, "spec": spec}
    assert apply_one(session, parse_object(body), CLUSTER_SOURCE).created == ["Contact/prod/ann"]
    metadata["generation"] = 4  # e.g. a label change bumps nothing, a spec change does
    spec["displayName"] = "Ann B."
    assert apply_one(session, parse_object(body), CLUSTER_SOURCE).updated == ["Contact/prod/ann"]
    assert apply_one(session, parse_object(body), CLUSTER_SOURCE).unchanged == ["Contact/prod/ann"]
    session.commit()
    row = session.scalars(select(ResourceRow)).one()
    assert (row.generation, row.spec["displayName"]) == (4, "Ann B.")
    assert delete_one(session, "Contact", "prod", "ann") is True
    assert delete_one(session, "Contact", "prod", "ann") is False
