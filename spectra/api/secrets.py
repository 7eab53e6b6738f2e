"""How secret values are looked up: by (namespace, Secret name, key), never written inline."""

from __future__ import annotations

from typing import Protocol


class SecretResolver(Protocol):
    """Answers secretKeyRefs. Standalone mode answers from `kind: Secret` manifests; the operator from the cluster."""

    def get(self, namespace: str, name: str, key: str) -> str | None: ...


class NoSecrets:
    """A resolver that knows no Secrets."""

    def get(self, namespace: str, name: str, key: str) -> str | None:
        return None
