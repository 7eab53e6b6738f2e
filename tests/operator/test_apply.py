"""The operator's path from a custom-resource body to the store: outcomes, Secrets, references,
conflicts and organizations' plans (on SQLite and MariaDB)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.operator.apply import Applier, Outcome, needs_patch, object_key, secret_names, status_patch
from spectra.operator.secrets import KubernetesSecrets
from spectra.store import Monitor as MonitorRow
from spectra.store import Notification, Role, User, UserStatus, push_token_hash
from spectra.store import Resource as ResourceRow
from tests.factories import manifests

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class FakeSecretStore:
    """Secrets as the API returns them (base64 data), keyed by (namespace, name)."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.reads = 0

    def put(self, namespace: str, name: str, **values: str) -> None:
        self.secrets[(namespace, name)] = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}

    def read(self, namespace: str, name: str) -> dict[str, str] | None:
        self.reads += 1
        return self.secrets.get((namespace, name))


@pytest.fixture
def store() -> FakeSecretStore:
    return FakeSecretStore()


@pytest.fixture
def applier(sessions: sessionmaker[Session], store: FakeSecretStore) -> Applier:
    return Applier(sessions, KubernetesSecrets(store.read, ttl=0), clock=lambda: NOW)


def monitor(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A Monitor as the API server hands it over: at generation 3, with a uid."""
    return manifests.monitor(name, namespace=namespace, metadata={"generation": 3, "uid": f"uid-{name}"}, **spec)


def org(name: str, namespaces: list[str], **spec: Any) -> dict[str, Any]:
    return manifests.organization(name, namespaces, metadata={"generation": 1}, **spec)


def paused(sessions: sessionmaker[Session], name: str) -> bool:
    with sessions() as session:
        return bool(session.scalar(select(MonitorRow.paused).where(MonitorRow.name == name)))


def test_valid_object_is_applied_and_ready(applier: Applier, sessions: sessionmaker[Session]) -> None:
    outcome = applier.apply(monitor("web"))
    assert outcome == Outcome(True, "Applied", "in the store and scheduled", applied=True)
    with sessions() as session:
        row = session.scalars(select(ResourceRow).where(ResourceRow.name == "web")).one()
        assert (row.source, row.generation, row.uid) == ("cluster", 3, "uid-web")
    patch = status_patch(outcome, monitor("web"), NOW)
    assert patch["observedGeneration"] == 3
    assert patch["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "True",
        "reason": "Applied",
        "message": "in the store and scheduled",
        "lastTransitionTime": None,
        "observedGeneration": 3,
    }


def test_invalid_edit_keeps_the_last_good_version(applier: Applier, sessions: sessionmaker[Session]) -> None:
    applier.apply(monitor("web"))
    outcome = applier.apply(monitor("web", timeout="1m"))
    assert not outcome.ready
    assert not outcome.applied
    assert outcome.reason == "Invalid"
    assert outcome.message.startswith("spec.timeout:")
    with sessions() as session:
        assert session.scalar(select(MonitorRow.timeout_ms).where(MonitorRow.name == "web")) == 10_000


def test_transition_time_moves_only_with_the_status() -> None:
    body = monitor("web")
    body["status"] = {
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }
    same = status_patch(Outcome(False, "Invalid", "x"), body, NOW)["conditions"][0]
    flipped = status_patch(Outcome(True, "Applied", "ok", applied=True), body, NOW)["conditions"][0]
    assert same["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert flipped["lastTransitionTime"] == "2026-11-24T12:00:00Z"
    assert "observedGeneration" not in status_patch(Outcome(False, "Invalid", "x"), body, NOW)


def test_a_status_is_patched_only_when_it_would_say_something_new() -> None:
    applied = Outcome(True, "Applied", "ok", applied=True)
    body = monitor("web")  # generation 3, no status yet
    assert needs_patch(applied, body)
    body["status"] = status_patch(applied, body, NOW)
    assert not needs_patch(applied, body)
    assert needs_patch(Outcome(False, "MissingReference", "x", applied=True), body)
    body["metadata"]["generation"] = 4  # an edit with the same outcome: observedGeneration must follow
    assert needs_patch(applied, body)
    invalid = Outcome(False, "Invalid", "x")
    body["status"] = status_patch(invalid, body, NOW)
    assert not needs_patch(invalid, body)


def test_object_keys_name_the_namespace_of_namespaced_kinds_only() -> None:
    assert object_key(monitor("web", namespace="shop")) == ("Monitor", "shop", "web")
    assert object_key(org("acme", ["acme-prod"])) == ("Organization", "", "acme")


def heartbeat(name: str, namespace: str = "default", secret: str = "beat") -> dict[str, Any]:
    body = manifests.heartbeat_monitor(name, secret, namespace=namespace, interval="5m", grace="1m")
    body["metadata"] |= {"generation": 3, "uid": f"uid-{name}"}
    return body


def test_missing_secret_then_created_then_rotated(
    applier: Applier, sessions: sessionmaker[Session], store: FakeSecretStore
) -> None:
    body = heartbeat("nightly")
    assert secret_names(body) == {("default", "beat")}
    outcome = applier.apply(body)
    assert (outcome.ready, outcome.reason) == (False, "SecretMissing")
    assert outcome.message == "spec.heartbeat.tokenFrom.secretKeyRef: Secret 'beat' does not exist in namespace default"
    assert outcome.awaited_secrets == (("default", "beat"),)  # the operator re-applies it when the Secret appears
    store.put("default", "beat", other="x")
    missing_key = applier.apply(body)
    assert "has no key 'token'" in missing_key.message
    assert missing_key.awaited_secrets == (("default", "beat"),)
    store.put("default", "beat", token="first-token")
    assert applier.apply(body).ready
    store.put("default", "beat", token="second-token")
    assert applier.apply(body).ready
    with sessions() as session:
        stored = session.scalar(select(MonitorRow.push_token_hash).where(MonitorRow.name == "nightly"))
    assert stored == push_token_hash("second-token")
    # Secret values never reach what is shown: outcomes name the Secret and key only.
    store.put("default", "beat", other="second-token")
    assert "second-token" not in str(applier.apply(body))


def test_secrets_are_read_from_the_objects_namespace_only(applier: Applier, store: FakeSecretStore) -> None:
    store.put("other-team", "beat", token="theirs")
    outcome = applier.apply(heartbeat("nightly"))
    assert outcome.reason == "SecretMissing"


def test_missing_reference_is_applied_but_not_ready(applier: Applier) -> None:
    outcome = applier.apply(monitor("web", escalationPolicyRef={"name": "primary"}))
    assert outcome.applied
    assert not outcome.ready
    assert outcome.reason == "MissingReference"
    assert "spec.escalationPolicyRef.name: EscalationPolicy 'primary' does not exist" in outcome.message
    assert outcome.awaited_objects == (("EscalationPolicy", "default", "primary"),)
    assert outcome.awaited_secrets == ()


def test_an_outcome_with_nothing_missing_awaits_nothing(applier: Applier) -> None:
    for outcome in (applier.apply(monitor("web")), applier.apply(monitor("bad", interval="nope"))):
        assert (outcome.awaited_objects, outcome.awaited_secrets) == ((), ())


def page(name: str, namespace: str, slug: str, hostnames: list[str]) -> dict[str, Any]:
    return manifests.status_page(
        name, namespace=namespace, slug=slug, title="Status", hostnames=hostnames, groups=manifests.components("x")
    )


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (page("b", "team-b", "acme", []), "spec.slug"),
        (page("b", "team-b", "other", ["status.acme.test"]), "spec.hostnames"),
    ],
)
def test_a_slug_or_host_name_claimed_twice_is_a_conflict(applier: Applier, second: dict[str, Any], field: str) -> None:
    applier.apply(monitor("x", "team-a"))
    assert applier.apply(page("a", "team-a", "acme", ["status.acme.test"])).ready
    outcome = applier.apply(second)
    assert (outcome.ready, outcome.reason, outcome.applied) == (False, "Conflict", False)
    assert outcome.message.startswith(field)
    assert "StatusPage/team-a/a" in outcome.message


def test_a_push_token_used_by_another_monitor_is_a_conflict_that_names_neither(
    applier: Applier, store: FakeSecretStore
) -> None:
    """Before: the store's unique key refused the row, kopf retried forever and Ready never came."""
    store.put("team-a", "push", token="shared-T0KEN-0123456789")
    store.put("team-b", "push", token="shared-T0KEN-0123456789")  # the same value in another tenant's Secret
    assert applier.apply(heartbeat("nightly", "team-a", "push")).ready
    assert applier.apply(heartbeat("nightly", "team-a", "push")).ready  # itself is no conflict

    outcome = applier.apply(heartbeat("copy", "team-b", "push"))
    assert (outcome.ready, outcome.reason, outcome.applied) == (False, "Conflict", False)
    assert outcome.message.startswith("spec.heartbeat.tokenFrom: ")
    assert "team-a" not in outcome.message
    assert "T0KEN" not in outcome.message

    store.put("team-b", "push", token="own-T0KEN-9876543210")
    assert applier.apply(heartbeat("copy", "team-b", "push")).ready


def test_organization_plan_limits(applier: Applier, sessions: sessionmaker[Session]) -> None:
    assert applier.apply(org("acme", ["acme-prod"], plan={"maxMonitors": 2, "minInterval": "30s"})).ready
    assert applier.apply(monitor("one", "acme-prod")).ready
    assert applier.apply(monitor("two", "acme-prod")).ready
    third = applier.apply(monitor("three", "acme-prod"))
    assert (third.ready, third.reason, third.applied) == (False, "OverPlanLimit", True)
    assert third.message == "Organization acme allows 2 monitors (spec.plan.maxMonitors); this is number 3"
    assert paused(sessions, "three")
    assert not paused(sessions, "one")
    fast = applier.apply(monitor("fast", "acme-prod", interval="10s"))
    assert fast.reason == "IntervalBelowPlan"
    assert fast.message.startswith("spec.interval: 10s is shorter than the minimum 30s")
    # Other namespaces are not the tenant's.
    assert applier.apply(monitor("free", "elsewhere")).ready
    # When one goes, the next in line runs.
    applier.delete("Monitor", "acme-prod", "one")
    assert applier.apply(monitor("three", "acme-prod")).ready
    assert not paused(sessions, "three")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"suspended": True}, "OrganizationSuspended"),
        ({"trialEnds": (NOW - timedelta(days=1)).isoformat()}, "TrialEnded"),
    ],
)
def test_suspended_or_expired_organizations_hold_their_monitors(
    applier: Applier, sessions: sessionmaker[Session], spec: dict[str, Any], reason: str
) -> None:
    assert applier.apply(monitor("one", "acme-prod")).ready
    applier.apply(org("acme", ["acme-prod"]))
    assert applier.apply(monitor("one", "acme-prod")).ready
    applier.apply(org("acme", ["acme-prod"], **spec))
    outcome = applier.apply(monitor("one", "acme-prod"))
    assert (outcome.ready, outcome.reason) == (False, reason)
    assert paused(sessions, "one")  # held, history kept
    applier.apply(org("acme", ["acme-prod"]))
    assert applier.apply(monitor("one", "acme-prod")).ready
    assert not paused(sessions, "one")


def test_status_pages_over_the_plan_are_not_served(applier: Applier, sessions: sessionmaker[Session]) -> None:
    applier.apply(org("acme", ["acme-prod"], plan={"maxStatusPages": 1}))
    applier.apply(monitor("x", "acme-prod"))
    assert applier.apply(page("a", "acme-prod", "acme-a", [])).ready
    outcome = applier.apply(page("b", "acme-prod", "acme-b", []))
    assert (outcome.reason, outcome.applied) == ("OverPlanLimit", False)
    with sessions() as session:
        assert session.scalar(select(ResourceRow.id).where(ResourceRow.name == "b")) is None


def test_a_namespace_belongs_to_one_organization(applier: Applier) -> None:
    assert applier.apply(org("acme", ["shared"])).ready
    outcome = applier.apply(org("globex", ["shared", "globex"]))
    assert outcome.reason == "Conflict"
    assert outcome.message == "spec.namespaces: namespace 'shared' already belongs to Organization/acme"


def test_delete_is_idempotent(applier: Applier) -> None:
    applier.apply(monitor("web"))
    assert applier.delete("Monitor", "default", "web") is True
    assert applier.delete("Monitor", "default", "web") is False


def test_an_object_stored_concurrently_by_another_writer_is_applied_again(
    sessions: sessionmaker[Session], store: FakeSecretStore
) -> None:
    """The kopf handler and the retry pass (maybe on another replica) may store the same new object at
    once; the one whose insert hits the unique key applies again instead of failing the handler."""
    other = Applier(sessions, KubernetesSecrets(store.read, ttl=0), clock=lambda: NOW)
    raced: list[Outcome] = []

    def competing_sessions() -> Session:
        session = sessions()
        if not raced:

            @event.listens_for(session, "before_flush")
            def _other_writer_first(*_: Any) -> None:
                if not raced:
                    raced.append(other.apply(monitor("web")))

        return session

    applier = Applier(
        cast("sessionmaker[Session]", competing_sessions), KubernetesSecrets(store.read, ttl=0), clock=lambda: NOW
    )
    outcome = applier.apply(monitor("web"))
    assert raced == [Outcome(True, "Applied", "in the store and scheduled", applied=True)]
    assert outcome == raced[0]
    with sessions() as session:
        assert session.scalars(select(ResourceRow.name).where(ResourceRow.kind == "Monitor")).all() == ["web"]
        assert session.scalars(select(MonitorRow.name)).all() == ["web"]


@pytest.mark.parametrize(
    ("labels", "allowed", "reason"),
    [
        ({"spectra.dev/discovered-from": "service"}, False, "PrivateTarget"),
        ({"spectra.dev/discovered-from": "service"}, True, "Applied"),
        ({"spectra.dev/discovered-from": "ingress"}, False, "Applied"),  # a public host: the probes decide
        ({}, False, "Applied"),  # written by hand: the probe's egress guard judges what it resolves to
    ],
)
def test_a_services_monitor_needs_private_targets_allowed(
    sessions: sessionmaker[Session], store: FakeSecretStore, labels: dict[str, str], allowed: bool, reason: str
) -> None:
    applier = Applier(sessions, KubernetesSecrets(store.read, ttl=0), clock=lambda: NOW, allow_private_targets=allowed)
    body = manifests.monitor("api-svc", url="http://api.default.svc:8080/", labels=labels)
    outcome = applier.apply(body)
    assert outcome.reason == reason
    with sessions() as session:
        stored = session.scalar(select(ResourceRow.name).where(ResourceRow.name == "api-svc"))
    assert (stored is not None) == (reason == "Applied")
    if reason == "PrivateTarget":
        assert "probe.allowPrivateTargets" in outcome.message


def test_a_services_monitor_stored_before_the_setting_changed_is_removed(
    sessions: sessionmaker[Session], store: FakeSecretStore
) -> None:
    body = manifests.monitor(
        "api-svc", url="http://api.default.svc:8080/", labels={"spectra.dev/discovered-from": "service"}
    )
    assert Applier(sessions, KubernetesSecrets(store.read, ttl=0), allow_private_targets=True).apply(body).ready
    assert Applier(sessions, KubernetesSecrets(store.read, ttl=0)).apply(body).reason == "PrivateTarget"
    with sessions() as session:
        assert session.scalar(select(ResourceRow.name).where(ResourceRow.name == "api-svc")) is None


def test_an_organizations_declared_admins_are_invited_once(
    sessions: sessionmaker[Session], store: FakeSecretStore
) -> None:
    applier = Applier(
        sessions, KubernetesSecrets(store.read, ttl=0), clock=lambda: NOW, public_url="https://spectra.example.test"
    )
    body = org("acme", ["shop"], admins=["Ann@Acme.example"])
    assert applier.apply(body).ready
    assert applier.apply(body).ready  # applied again: no second invitation
    with sessions() as session:
        user = session.scalars(select(User).where(User.email == "ann@acme.example")).one()
        assert (user.status, [(m.organization, m.role) for m in user.memberships]) == (
            UserStatus.INVITED,
            [("acme", Role.ADMIN)],
        )
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
