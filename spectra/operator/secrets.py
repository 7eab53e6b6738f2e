"""Secret values from the Kubernetes API, for the operator, probe workers, the alerter and the web.

Only `get` on a named Secret in the asking object's namespace: never a list, never another namespace.
Values are cached for `ttl` seconds so a busy probe does not read the same Secret for every check; a
Secret that changes is picked up within `ttl`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable, Iterable

SecretReader = Callable[[str, str], "dict[str, str] | None"]
"""(namespace, name) -> the Secret's base64 data, or None when it does not exist."""


class KubernetesSecrets:
    """A SecretResolver reading Secrets through the API, with a short cache."""

    def __init__(self, read: SecretReader, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}

    def get(self, namespace: str, name: str, key: str) -> str | None:
        data = self._data(namespace, name)
        if data is None or key not in data:
            return None
        try:
            return base64.b64decode(data[key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def keys(self, namespace: str, name: str) -> frozenset[str] | None:
        data = self._data(namespace, name)
        return None if data is None else frozenset(data)

    def fingerprint(self, refs: Iterable[tuple[str, str]]) -> str:
        """A digest of the named Secrets' current contents (fresh reads): it changes when any of them does."""
        digest = hashlib.sha256()
        for namespace, name in sorted(set(refs)):
            self.forget(namespace, name)
            data = self._data(namespace, name)
            digest.update(f"{namespace}/{name}:".encode())
            digest.update(repr(sorted(data.items())).encode() if data is not None else b"-")
        return digest.hexdigest()

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._cache.pop((namespace, name), None)

    def _data(self, namespace: str, name: str) -> dict[str, str] | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get((namespace, name))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        data = self._read(namespace, name)
        with self._lock:
            self._cache[(namespace, name)] = (now, data)
        return data
