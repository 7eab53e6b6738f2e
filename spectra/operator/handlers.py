"""kopf handlers: thin. Body -> `Resync.reconcile` (the `Applier`, the loader standalone mode uses) ->
Ready condition.

Every kind gets the same three: reconcile on resume, create and update; forget on delete (kopf keeps
a finalizer on each object until that handler has run, also across operator restarts). The handler
writes the status itself, under the object's lock, rather than through kopf's patch (sent after the
handler returns): otherwise a waiting object applied again a moment later, when what it waited for
arrived, could have its fresh Ready condition overwritten by the handler's older one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from spectra.api import GROUP, KINDS, VERSION
from spectra.operator.apply import changed, object_key
from spectra.operator.resync import Resync

FINALIZER = "spectra.dev/finalizer"
PEERING_LIFETIME_S = 20
# A failed handler (the database briefly away) is retried this soon, not after kopf's default 60 s.
HANDLER_BACKOFF_S = 10


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-dict copy of a kopf body (its views are read-only and not JSON types)."""
    return {key: _plain(value) for key, value in body.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def register(registry: kopf.OperatorRegistry, resync: Resync) -> None:
    def reconcile(*, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
        raw = plain(body)
        outcome = resync.reconcile(raw, always_patch=True, post_event=False)
        if outcome is not None and not outcome.ready and changed(outcome, raw):
            kopf.warn(body, reason=outcome.reason, message=outcome.message[:1024])
            logger.warning("%s: %s", outcome.reason, outcome.message)

    def forget(*, body: kopf.Body, **_: Any) -> None:
        resync.forget(object_key(body))

    # kopf authenticates through the official client: in-cluster credentials, else the kubeconfig.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    for model in KINDS.values():
        resource = (GROUP, VERSION, model.info.plural)
        kopf.on.resume(*resource, registry=registry, id="reconcile-resume", backoff=HANDLER_BACKOFF_S)(reconcile)
        kopf.on.create(*resource, registry=registry, id="reconcile-create", backoff=HANDLER_BACKOFF_S)(reconcile)
        kopf.on.update(*resource, registry=registry, id="reconcile-update", backoff=HANDLER_BACKOFF_S)(reconcile)
        kopf.on.delete(*resource, registry=registry, id="forget", backoff=HANDLER_BACKOFF_S)(forget)


def settings(peering_name: str = "spectra") -> kopf.OperatorSettings:
    """kopf's settings: our finalizer and annotation prefix, quiet Events, and cluster-wide peering."""
    chosen = kopf.OperatorSettings()
    chosen.persistence.finalizer = FINALIZER
    # Progress and the last handled spec live in annotations: the CRDs' status schema is ours.
    chosen.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="spectra.dev")
    chosen.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="spectra.dev", key="last-handled-configuration"
    )
    chosen.posting.level = logging.WARNING  # our own Events only, not one per handler run
    chosen.posting.reporting_component = "spectra-operator"
    chosen.peering.name = peering_name
    chosen.peering.clusterwide = True
    chosen.peering.mandatory = False
    # A crashed replica's peering record blocks the others until it expires: keep that short.
    chosen.peering.lifetime = PEERING_LIFETIME_S
    chosen.execution.max_workers = 8
    chosen.watching.server_timeout = 300
    chosen.watching.client_timeout = 330
    return chosen
