"""Faults of the alerting side on real processes: `spectra alerter` on MariaDB with the provider stand-ins.

The test writes monitor states the way the probe writer does (tests/support/cluster.py), so each case
controls exactly when monitors fail; everything else (leases, incidents, escalation, the outbox, the ack
links) is the real alerter process.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.factories.manifests import resource, to_yaml
from tests.support.cluster import Alerter, Cluster, ack_url, monitors_yaml, post_form
from tests.support.db_proxy import DatabaseProxy
from tests.support.waiting import wait_for

ALICE = "alice@example.com"


def contact_and_policy(*delays_s: int, repeat: int = 0, crowd: int = 0) -> str:
    """Alice paged by email at each step (after each delay); `crowd` more contacts paged with her."""
    people = ["alice", *(f"c{i}" for i in range(crowd))]
    contacts = [
        resource("Contact", name, {"displayName": name, "email": f"{name}@example.com", "channels": ["email"]})
        for name in people
    ]
    targets = [{"contact": name} for name in people]
    steps = [{"delay": f"{delay}s", "targets": targets, "channels": ["email"]} for delay in delays_s]
    return to_yaml(*contacts, resource("EscalationPolicy", "primary", {"steps": steps, "repeat": repeat}))


# --- 1: an acknowledgement racing the next escalation step ---------------------------------------------------


def test_acks_racing_escalation_steps_are_never_lost(cluster: Cluster) -> None:
    """50 incidents escalate at every alerter pass (steps without delay, five people each); all 50 are
    acknowledged at once at random moments of that escalation.

    Every ack answers 200 and sticks, and no step fires after the ack committed.
    """
    names = [f"race-{i}" for i in range(50)]
    store = cluster.apply(contact_and_policy(0, *[1] * 19, crowd=4) + monitors_yaml(names))
    alerter = cluster.alerter()
    wait_for(alerter.ready, "alerter ready")
    ids = store.monitor_ids()
    store.report({ids[name]: "down" for name in names})
    wait_for(
        lambda: store.scalar("SELECT COUNT(*) FROM incidents WHERE state = 'open'") == len(names),
        "every incident open",
        timeout=60,
    )
    incidents = [int(row.id) for row in store.rows("SELECT id FROM incidents")]
    rng = random.Random(12)
    answers: dict[int, tuple[int, str]] = {}

    def acknowledge(incident_id: int, pause_s: float) -> None:
        time.sleep(pause_s)
        answers[incident_id] = post_form(ack_url(alerter, incident_id), {"action": "acknowledge"})

    with ThreadPoolExecutor(max_workers=len(incidents)) as pool:
        for incident_id in incidents:
            pool.submit(acknowledge, incident_id, rng.uniform(0.5, 10.0))
    assert sorted(answers) == sorted(incidents)
    refused = {i: (status, body[:200]) for i, (status, body) in answers.items() if status != 200}
    assert refused == {}, refused
    assert all("is acknowledged" in body for _, body in answers.values())
    assert store.scalar("SELECT COUNT(*) FROM incidents WHERE state = 'acknowledged'") == len(names)
    late = store.rows(
        "SELECT e.incident_id, e.type, e.message FROM incident_events e JOIN incident_events a"
        " ON a.incident_id = e.incident_id AND a.type = 'acknowledged'"
        " WHERE e.id > a.id AND e.type IN ('notified', 'escalated')"
    )
    assert late == []  # no step after an ack
    stepped = store.scalar("SELECT COUNT(*) FROM incident_events WHERE type = 'escalated'")
    assert stepped > 0  # the acks did race escalation steps
    assert "Traceback" not in alerter.text()


# --- 4: a reopened incident whose escalation was exhausted ------------------------------------------------


def test_a_flap_after_the_escalation_was_exhausted_pages_again(cluster: Cluster) -> None:
    store = cluster.apply(contact_and_policy(0) + monitors_yaml(["flappy"]))
    alerter = cluster.alerter()
    providers = cluster.providers
    wait_for(alerter.ready, "alerter ready")
    monitor = store.monitor_ids()["flappy"]
    store.report({monitor: "down"})
    wait_for(lambda: len(providers.emails(ALICE)) == 1, "the first page")
    wait_for(lambda: store.scalar("SELECT status FROM escalations") == "exhausted", "escalation exhausted")
    store.report({monitor: "up"})
    wait_for(lambda: store.scalar("SELECT state FROM incidents") == "resolved", "resolved")
    store.report({monitor: "down"})  # within the reopen window
    wait_for(lambda: store.scalar("SELECT state FROM incidents") == "open", "reopened")
    pages = wait_for(
        lambda: [m for m in providers.emails(ALICE) if "RESOLVED" not in str(m)][1:], "the page of the reopening"
    )
    assert len(pages) == 1
    assert store.scalar("SELECT COUNT(*) FROM incidents") == 1


# --- 9: clock skew between alerters -------------------------------------------------------------------------


def test_alerters_with_clocks_10_s_apart_share_one_leadership_and_miss_no_incident(cluster: Cluster) -> None:
    names = [f"skew-{i}" for i in range(3)]
    store = cluster.apply(contact_and_policy(0) + monitors_yaml(names, interval="2s"))
    providers = cluster.providers
    ids = store.monitor_ids()
    reporting = threading.Event()
    down: set[str] = set()

    def probe_writer() -> None:  # a probe reporting every 2 s, as the writer does
        while not reporting.is_set():
            store.report({ids[name]: "down" if name in down else "up" for name in names})
            reporting.wait(2)

    writer = threading.Thread(target=probe_writer, daemon=True)
    writer.start()
    behind = cluster.alerter("behind", clock_offset="-10s")
    ahead: Alerter | None = None
    try:
        wait_for(lambda: store.scalar("SELECT holder FROM leader_leases WHERE name = 'alerter'") is not None, "leader")
        first = store.scalar("SELECT holder FROM leader_leases WHERE name = 'alerter'")
        ahead = cluster.alerter("ahead", clock_offset="+10s")
        holders = set()
        deadline = time.monotonic() + 8  # the lease's TTL is 6 s: ahead by 10 s, it would take it at once
        while time.monotonic() < deadline:  # the one ahead must not see the healthy lease as expired
            holders.add(store.scalar("SELECT holder FROM leader_leases WHERE name = 'alerter'"))
            time.sleep(0.25)
        assert holders == {first}
        assert behind.metric("spectra_alerter_leader") + ahead.metric("spectra_alerter_leader") == 1

        down.add("skew-0")
        wait_for(lambda: len(providers.emails(ALICE)) == 1, "the page while the one behind leads", timeout=20)
        behind.stop()  # the one ahead takes over: it must still see 2 s reports as fresh
        wait_for(lambda: ahead is not None and ahead.metric("spectra_alerter_leader") == 1, "the one ahead leads")
        down.add("skew-1")
        wait_for(lambda: len(providers.emails(ALICE)) == 2, "the page while the one ahead leads", timeout=20)
        assert store.scalar("SELECT COUNT(*) FROM incidents WHERE monitor_name = 'skew-2'") == 0
    finally:
        reporting.set()
        writer.join(10)


# --- 10: the database away: readiness, metrics and a quiet log ----------------------------------------------


def test_a_database_outage_and_a_freeze_make_the_alerter_unready_and_log_a_few_lines(cluster: Cluster) -> None:
    cluster.apply(contact_and_policy(0) + monitors_yaml(["quiet"]))
    proxy = DatabaseProxy()
    alerter = cluster.alerter(proxy=proxy)
    try:
        wait_for(alerter.ready, "alerter ready")
        wait_for(lambda: alerter.metric("spectra_alerter_leader") == 1, "the alerter leads")
        for fault in (proxy.cut, proxy.freeze):
            fault()
            wait_for(lambda: not alerter.ready(), f"/readyz reports the {fault.__name__}", timeout=45)
            time.sleep(2)
            proxy.restore()
            wait_for(alerter.ready, "ready again", timeout=45)
        assert alerter.metric("spectra_alerter_pass_failures_total") >= 1
        text = alerter.text()
        assert "Traceback" not in text
        assert "recovered after" in text
        assert len(text.splitlines()) < 40, text  # a few lines per outage, not one per pass
    finally:
        alerter.stop()
        proxy.close()


# --- 12: a mass outage ---------------------------------------------------------------------------------------


def test_200_monitors_failing_at_once_are_all_paged_quickly_by_one_leader(cluster: Cluster) -> None:
    names = [f"mass-{i}" for i in range(200)]
    store = cluster.apply(contact_and_policy(0, 3600) + monitors_yaml(names))
    alerter = cluster.alerter()
    wait_for(alerter.ready, "alerter ready")
    ids = store.monitor_ids()
    store.report({ids[name]: "down" for name in names})
    flipped = time.monotonic()
    wait_for(lambda: len(cluster.providers.emails(ALICE)) >= len(names), "every first page", timeout=60)
    took_s = time.monotonic() - flipped
    assert took_s < 30, took_s  # generous: the bench measures the real figure
    assert store.scalar("SELECT COUNT(*) FROM incidents") == len(names)
    assert alerter.metric("spectra_alerter_leadership_changes_total") == 1  # never lost it mid-pass
