"""The operator's re-applies: an object waiting for something is applied again the moment it arrives,
and a periodic pass over every object is the safety net.

kopf reacts to changes of an object; some things change without an event on the object itself: a
referenced object arrives, a Secret it names appears or is rotated, an organization's plan, suspension
or trial end moves, or an object is deleted before kopf ever put its finalizer on.

- Waiting objects (`waits.py`): an object whose outcome is MissingReference or SecretMissing is applied
  again as soon as what it names is applied (by a handler, this pass or another re-apply) or, for a
  Secret, appears (the Secrets someone waits for are polled: the operator may only `get` named Secrets).
  This runs on every replica, on what that replica's handlers and passes saw.
- The periodic pass (`run_once`, every `secretRefreshSeconds`, on the lease holder): re-applies the objects
  that may be affected (applying is idempotent, so unchanged ones cost a few reads) and removes rows of
  objects that are gone.

Every apply of one object and the status written for it (from a kopf handler, a waiter's re-apply or
the pass) happen under that object's lock, so an older outcome never lands after a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select

from spectra.api import KINDS, Monitor, StatusPage
from spectra.operator.apply import (
    Applier,
    Outcome,
    changed,
    needs_patch,
    object_key,
    ready_condition,
    secret_names,
    status_patch,
)
from spectra.operator.kube import Kube
from spectra.operator.organizations import organizations
from spectra.operator.secrets import KubernetesSecrets
from spectra.operator.waits import ObjectKey, Waits
from spectra.reconcile import CLUSTER_SOURCE
from spectra.runtime.loop import FailureLog
from spectra.store import Resource as ResourceRow
from spectra.store.types import utcnow

log = logging.getLogger("spectra.operator")

SWEEP_MARGIN = timedelta(seconds=10)
LOCK_STRIPES: Final = 64  # per-object locks, striped: bounded, and contention needs two busy objects to collide
STOP_CHECK_S: Final = 0.5  # how often the re-apply loop looks at its stop flag while nothing wakes it
AFTER_FAILURE_S: Final = 2.0


class Resync:
    """Applies objects again: waiting ones when what they wait for arrives (`converge`), and on each
    periodic pass (`run_once`) objects that are not Ready, objects whose Secrets changed, and tenants'
    objects (plans, suspension and trial ends change over time)."""

    def __init__(self, applier: Applier, kube: Kube, secrets: KubernetesSecrets, waits: Waits | None = None) -> None:
        self.applier = applier
        self.kube = kube
        self.secrets = secrets
        self.waits = waits if waits is not None else Waits()
        self._fingerprints: dict[tuple[str, str, str], str] = {}
        self._locks = tuple(threading.Lock() for _ in range(LOCK_STRIPES))

    # --- one object --------------------------------------------------------------------------------

    def reconcile(
        self, body: Mapping[str, Any], *, always_patch: bool = False, post_event: bool = True
    ) -> Outcome | None:
        """Apply `body`, write its Ready condition when it says something new (`always_patch`: whatever
        it says), post a Warning Event when it newly says not Ready, and note what it waits for. None when
        the object is gone."""
        key = object_key(body)
        with self._lock(key):
            done = self._reconcile(key, body, always_patch=always_patch, post_event=post_event)
        return None if done is None else done[0]

    def reconcile_current(self, key: ObjectKey) -> Outcome | None:
        """Apply the object as the API has it now (read under its lock, so nothing older lands after)."""
        with self._lock(key):
            body = self.kube.get_object(*key)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                self.waits.forget(key)  # a deleted object's rows are kopf's delete handler's to remove
                return None
            done = self._reconcile(key, body, always_patch=False, post_event=True)
        return None if done is None else done[0]

    def forget(self, key: ObjectKey) -> None:
        """The object is deleted: its rows go, it waits for nothing, and the objects that may name it are
        applied again (a Monitor whose EscalationPolicy was deleted is Ready no more)."""
        with self._lock(key):
            self.applier.delete(*key)
            self.waits.forget(key)
        self.waits.make_due(self.applier.may_name(key))

    def _reconcile(
        self, key: ObjectKey, body: Mapping[str, Any], *, always_patch: bool, post_event: bool
    ) -> tuple[Outcome, bool] | None:
        """(outcome, whether the status was patched); None when the object is gone."""
        since = self.waits.mark()
        outcome = self.applier.apply(body)
        patched = False
        if always_patch or needs_patch(outcome, body):
            if not self.kube.patch_status(*key, status_patch(outcome, body, utcnow())):
                self.waits.forget(key)
                return None
            patched = True
            if post_event and not outcome.ready and changed(outcome, body):
                self.kube.event(_involved(body), type_="Warning", reason=outcome.reason, message=outcome.message)
        if not self.waits.record(key, outcome.awaited_objects, outcome.awaited_secrets, since=since):
            log.debug("%s/%s/%s waits for something, but the index is full", *key)
        if outcome.applied:
            self.waits.applied(key)
        return outcome, patched

    def _lock(self, key: ObjectKey) -> threading.Lock:
        return self._locks[hash(key) % LOCK_STRIPES]

    # --- waiting objects ---------------------------------------------------------------------------

    def converge_once(self) -> int:
        """Read the awaited Secrets whose poll is due, then apply every due waiter again; how many."""
        for namespace, name in self.waits.secrets_due():
            self.secrets.forget(namespace, name)  # a fresh read, which the next apply then sees too
            self.waits.secret_read((namespace, name), self.secrets.keys(namespace, name))
        applied = 0
        failures: list[Exception] = []
        for key in self.waits.take_due():
            try:
                if self.reconcile_current(key) is not None:
                    applied += 1
            except Exception as error:  # one object's failure must not hold up the others
                failures.append(error)
        if failures:
            raise failures[0]  # reported by the loop; the object still waits, and the periodic pass retries it
        return applied

    async def converge(self, stop: asyncio.Event) -> None:
        """Apply waiting objects again as soon as what they wait for arrives, until `stop` is set."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def wake_up() -> None:  # called from handler threads
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is stopping
                loop.call_soon_threadsafe(wake.set)

        self.waits.on_due(wake_up)
        failures = FailureLog("re-apply of waiting objects", log)
        retry_at = 0.0
        while not stop.is_set():
            wake.clear()  # before looking for work: a wake-up from now on ends the pause below
            if loop.time() >= retry_at and self.waits.has_work():
                try:
                    await asyncio.to_thread(self.converge_once)
                except Exception as error:
                    failures.failed(error)
                    retry_at = loop.time() + AFTER_FAILURE_S  # the API or database may be away: not at once
                else:
                    failures.succeeded()
            now = loop.time()
            if now < retry_at:
                pause = min(STOP_CHECK_S, retry_at - now)
            else:
                next_poll = self.waits.next_poll_in()
                pause = STOP_CHECK_S if next_poll is None else min(next_poll, STOP_CHECK_S)
            # A pause with asyncio.timeout on one event, not a task per wait: kopf, as it stops, cancels the
            # tasks started after it. So `stop` is looked at every STOP_CHECK_S rather than awaited.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await wake.wait()

    # --- the periodic pass -------------------------------------------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind in KINDS:
            found.extend(self.kube.list_objects(kind))
        return found

    def run_once(self) -> int:
        """One pass over every object; returns how many got a new Ready condition."""
        listed_at = utcnow()
        recorded_by = self.waits.mark()
        objects = self.objects()
        with self.applier.sessions() as session:
            tenant_namespaces = {ns for org in organizations(session) for ns in org.spec.namespaces}
        updated = 0
        seen: set[tuple[str, str, str]] = set()
        for body in objects:
            meta = body.get("metadata") or {}
            key = object_key(body)
            seen.add(key)
            if meta.get("deletionTimestamp"):
                continue  # kopf's delete handler removes its rows, then the finalizer
            refs = secret_names(body)
            fingerprint = self.secrets.fingerprint(refs) if refs else ""
            # Never seen: no baseline to compare with, and the Secret may have changed since the object
            # was applied (a rotation right after a handler's apply went unnoticed for good): apply once.
            secrets_changed = bool(refs) and self._fingerprints.get(key) != fingerprint
            self._fingerprints[key] = fingerprint
            condition = ready_condition(body)
            tenant = key[0] in (Monitor.__name__, StatusPage.__name__) and key[1] in tenant_namespaces
            if not (secrets_changed or tenant or condition is None or condition.get("status") != "True"):
                continue
            with self._lock(key):
                done = self._reconcile(key, body, always_patch=False, post_event=True)
            if done is not None and done[1]:
                updated += 1
        for gone in set(self._fingerprints) - seen:
            del self._fingerprints[gone]
        self.waits.forget_absent(seen, recorded_by)
        self._sweep(seen, listed_at)
        return updated

    def _sweep(self, present: set[tuple[str, str, str]], listed_at: datetime) -> None:
        """Remove store rows of objects that no longer exist (deleted before kopf put its finalizer on).

        Only rows untouched since before the list began: a row written meanwhile may be an object
        created after the list was taken.
        """
        settled = listed_at - SWEEP_MARGIN
        with self.applier.sessions() as session:
            rows = session.execute(
                select(ResourceRow.kind, ResourceRow.namespace, ResourceRow.name).where(
                    ResourceRow.source == CLUSTER_SOURCE, ResourceRow.updated_at < settled
                )
            ).all()
        for kind, namespace, name in rows:
            if (kind, namespace, name) not in present:
                self.applier.delete(kind, namespace, name)


def _involved(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace") or "default",
        "uid": meta.get("uid"),
    }
