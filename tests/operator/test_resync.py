"""Resync against the Kubernetes API emulator: objects waiting for a reference or a Secret are applied
again the moment it arrives (through the index of waits), with their status written; the periodic pass
feeds the same index, forgets deleted objects and picks up a Secret rotated before it first looked.
On SQLite only: what is under test is the re-apply and the status, not the store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.operator.apply import Applier
from spectra.operator.kube import Kube, load_config
from spectra.operator.resync import Resync
from spectra.operator.secrets import KubernetesSecrets
from spectra.operator.waits import ObjectKey, Waits
from spectra.store import Monitor as MonitorRow
from spectra.store import push_token_hash
from tests.factories.manifests import heartbeat_monitor, monitor, resource, secret, to_yaml
from tests.support.databases import sqlite_only
from tests.support.kube import MONITORS, ClusterEmulator, spectra_resource
from tests.support.waiting import eventually

pytestmark = sqlite_only

POLICIES = spectra_resource("EscalationPolicy")
CONTACTS = spectra_resource("Contact")
SECRETS = "v1/secrets"
CHECKOUT: ObjectKey = ("Monitor", "default", "checkout")
PRIMARY: ObjectKey = ("EscalationPolicy", "default", "primary")
ALICE: ObjectKey = ("Contact", "default", "alice")


@pytest.fixture
def kube(cluster: ClusterEmulator) -> Kube:
    return Kube(load_config(str(cluster.kubeconfig)))


@pytest.fixture
def resync(kube: Kube, sessions: sessionmaker[Session]) -> Resync:
    # A 30 s Secret cache, as the operator has: a Secret that appears must be found despite it.
    secrets = KubernetesSecrets(kube.read_secret, ttl=30)
    return Resync(Applier(sessions, secrets), kube, secrets, Waits(first_poll_s=0.0))


def policy() -> dict[str, Any]:
    """EscalationPolicy `primary`: Contact alice, and a webhook whose URL is in Secret `hooks`."""
    webhook = {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "url"}}}
    steps = [{"delay": "0s", "targets": [{"contact": "alice"}, {"webhook": webhook}]}]
    return resource("EscalationPolicy", "primary", {"steps": steps})


def paging_alice() -> dict[str, Any]:
    """EscalationPolicy `primary` paging Contact alice: stored, and Ready once alice exists."""
    return resource("EscalationPolicy", "primary", {"steps": [{"delay": "0s", "targets": [{"contact": "alice"}]}]})


def contact() -> dict[str, Any]:
    return resource("Contact", "alice", {"displayName": "Alice", "email": "alice@example.com", "channels": ["email"]})


def ready(cluster: ClusterEmulator, resource_path: str, name: str) -> tuple[str, str]:
    """(status, reason) of the Ready condition in the API ("", "") before there is one."""
    body = cluster.get(resource_path, "default", name) or {}
    for found in (body.get("status") or {}).get("conditions") or []:
        if found.get("type") == "Ready":
            return str(found["status"]), str(found["reason"])
    return "", ""


def test_a_chain_of_waiters_becomes_ready_as_each_missing_piece_arrives(
    cluster: ClusterEmulator, resync: Resync
) -> None:
    # In file order, as `kubectl apply -f` sends them: the monitor before the policy it names, the policy
    # before its Contact and Secret.
    outcome = resync.reconcile(cluster.create(MONITORS, monitor("checkout", escalationPolicyRef={"name": "primary"})))
    assert outcome is not None
    assert (outcome.reason, outcome.awaited_objects) == ("MissingReference", (PRIMARY,))
    assert ready(cluster, MONITORS, "checkout") == ("False", "MissingReference")
    assert resync.waits.waiters(PRIMARY) == {CHECKOUT}

    outcome = resync.reconcile(cluster.create(POLICIES, policy()))
    assert outcome is not None
    assert (outcome.reason, outcome.awaited_secrets) == ("SecretMissing", (("default", "hooks"),))
    assert resync.converge_once() == 0  # the policy is not in the store: the monitor still waits
    assert ready(cluster, MONITORS, "checkout") == ("False", "MissingReference")

    # The Secret appears (nobody touches the policy): the poll finds it, the policy is applied and names
    # the Contact that is still missing; being stored, it wakes the monitor.
    cluster.create(SECRETS, secret("hooks", url="https://hooks.example.com/x"))
    assert resync.converge_once() == 1
    assert ready(cluster, POLICIES, "primary") == ("False", "MissingReference")
    assert resync.waits.waiting_for(PRIMARY) == {ALICE}
    assert resync.converge_once() == 1
    assert ready(cluster, MONITORS, "checkout") == ("True", "Applied")

    outcome = resync.reconcile(cluster.create(CONTACTS, contact()))
    assert outcome is not None
    assert outcome.ready
    assert resync.converge_once() == 1
    assert ready(cluster, POLICIES, "primary") == ("True", "Applied")
    assert len(resync.waits) == 0
    assert resync.waits.polled_secrets() == frozenset()
    # A Warning Event for each new reason of not being Ready, none for becoming Ready.
    reasons = sorted((e["involvedObject"]["name"], e["reason"]) for e in cluster.list("v1/events", "default"))
    assert reasons == [("checkout", "MissingReference"), ("primary", "MissingReference"), ("primary", "SecretMissing")]


def test_a_waiter_deleted_meanwhile_leaves_the_index(
    cluster: ClusterEmulator, resync: Resync, kube: Kube, sessions: sessionmaker[Session]
) -> None:
    resync.reconcile(cluster.create(MONITORS, monitor("checkout", escalationPolicyRef={"name": "primary"})))
    cluster.kubectl("delete", "monitor", "checkout")
    resync.reconcile(cluster.create(POLICIES, paging_alice()))
    assert resync.waits.waiters(PRIMARY) == {CHECKOUT}
    assert resync.converge_once() == 0
    assert resync.waits.waiting_for(CHECKOUT) == frozenset()
    assert resync.waits.waiters(PRIMARY) == frozenset()

    # So does one whose delete handler ran.
    other: ObjectKey = ("Monitor", "default", "other")
    resync.reconcile(cluster.create(MONITORS, monitor("other", escalationPolicyRef={"name": "backup"})))
    assert resync.waits.waiting_for(other) == {("EscalationPolicy", "default", "backup")}
    resync.forget(other)
    assert resync.waits.waiting_for(other) == frozenset()
    with sessions() as session:
        assert session.scalars(select(MonitorRow.name)).all() == ["checkout"]  # its rows are kopf's to remove


def test_the_re_apply_loop_wakes_when_another_thread_applies_what_is_awaited(
    cluster: ClusterEmulator, resync: Resync
) -> None:
    resync.reconcile(cluster.create(MONITORS, monitor("checkout", escalationPolicyRef={"name": "primary"})))
    policy_body = cluster.create(POLICIES, paging_alice())

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(resync.converge(stop))
        await asyncio.sleep(0)  # the loop has run once and sleeps: nothing is due, no Secret is polled
        # A kopf handler runs in a thread of its own.
        handler = threading.Thread(target=resync.reconcile, args=(policy_body,))
        handler.start()
        await eventually(lambda: ready(cluster, MONITORS, "checkout") == ("True", "Applied"), timeout=20)
        handler.join()
        stop.set()
        await asyncio.wait_for(loop, timeout=20)

    asyncio.run(scenario())


def test_the_periodic_pass_feeds_the_index_and_forgets_deleted_objects(
    cluster: ClusterEmulator, resync: Resync
) -> None:
    # Objects the handlers never saw (another replica's, or before a restart): the pass applies them.
    cluster.create(MONITORS, monitor("checkout", escalationPolicyRef={"name": "primary"}))
    cluster.create(MONITORS, monitor("gone", escalationPolicyRef={"name": "primary"}))
    assert resync.run_once() == 2
    assert resync.waits.waiters(PRIMARY) == {CHECKOUT, ("Monitor", "default", "gone")}

    cluster.kubectl("delete", "monitor", "gone")
    resync.run_once()
    assert resync.waits.waiters(PRIMARY) == {CHECKOUT}

    resync.reconcile(cluster.create(POLICIES, paging_alice()))
    assert resync.converge_once() == 1
    assert ready(cluster, MONITORS, "checkout") == ("True", "Applied")


def test_a_secret_rotated_before_the_pass_first_looked_is_picked_up(
    cluster: ClusterEmulator, resync: Resync, sessions: sessionmaker[Session]
) -> None:
    cluster.create(SECRETS, secret("nightly-token", token="first"))
    assert resync.reconcile(cluster.create(MONITORS, heartbeat_monitor("nightly", "nightly-token"))) is not None
    # Rotated right after the handler applied it, before any pass had a fingerprint to compare with.
    cluster.kubectl("apply", "-f", "-", input=to_yaml(secret("nightly-token", token="second")))
    resync.run_once()
    with sessions() as session:
        stored = session.scalar(select(MonitorRow.push_token_hash).where(MonitorRow.name == "nightly"))
    assert stored == push_token_hash("second")


def test_deleting_what_an_object_names_makes_it_not_ready_at_once(cluster: ClusterEmulator, resync: Resync) -> None:
    resync.reconcile(cluster.create(CONTACTS, contact()))
    resync.reconcile(cluster.create(POLICIES, paging_alice()))
    resync.reconcile(cluster.create(MONITORS, monitor("checkout", escalationPolicyRef={"name": "primary"})))
    resync.reconcile(cluster.create(MONITORS, monitor("unrelated")))
    assert ready(cluster, MONITORS, "checkout") == ("True", "Applied")
    assert resync.converge_once() == 0

    cluster.kubectl("delete", "escalationpolicy", "primary")
    resync.forget(PRIMARY)  # kopf's delete handler
    assert resync.converge_once() == 1  # the monitor that names it, not the unrelated one
    assert ready(cluster, MONITORS, "checkout") == ("False", "MissingReference")
    assert resync.waits.waiting_for(CHECKOUT) == {PRIMARY}

    resync.reconcile(cluster.create(POLICIES, paging_alice()))  # back again: Ready again
    assert resync.converge_once() == 1
    assert ready(cluster, MONITORS, "checkout") == ("True", "Applied")
