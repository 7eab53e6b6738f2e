"""The Kubernetes permissions SpectraMonitor needs, as data: the chart renders these rules and a test
checks that it does, so there is one list to review. No wildcards; Secrets are read with `get` only.
"""

from __future__ import annotations

from typing import Final

from spectra.api import KINDS

Rule = dict[str, list[str]]

_PLURALS: Final = sorted(kind.info.plural for kind in KINDS.values())

# Cluster-wide: the custom resources in every namespace, their status, Events, and the Secrets they name.
OPERATOR_CLUSTER_RULES: Final[list[Rule]] = [
    {"apiGroups": ["spectra.dev"], "resources": _PLURALS, "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["spectra.dev"], "resources": [f"{p}/status" for p in _PLURALS], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
    # Discovery: annotated Ingresses, HTTPRoutes and Services get Monitors, which the operator writes.
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["spectra.dev"], "resources": ["monitors"], "verbs": ["create", "update", "delete"]},
]

# In the operator's own namespace only: the children it makes (owned by the operator's Deployment, hence
# `update` on deployments/finalizers, which blockOwnerDeletion needs where owner checks are enforced).
OPERATOR_NAMESPACE_RULES: Final[list[Rule]] = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["ingresses"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments/finalizers"], "verbs": ["update"]},
]

# Probe workers (HTTP header values) and the web/alerter (contact addresses, webhook URLs).
SECRET_READER_RULES: Final[list[Rule]] = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]
