"""JSON sealed at rest: encrypted with a key derived from SPECTRA_SECRET_KEY, opened on read.

The outbox's message bodies carry ack, confirm and unsubscribe links (their signed tokens act on an
incident or a subscription) until they are delivered. :class:`SealedJSON` is the column type that keeps
them out of a copied table, a backup or a SQL console: each value is stored as ``{"sealed": <Fernet
token>}`` (AES-128-CBC + HMAC-SHA256) with a key derived by HKDF-SHA256 from SPECTRA_SECRET_KEY, the key
the tokens themselves are signed with. Without SPECTRA_SECRET_KEY the key is random per process, like
the links' (they die with the process anyway).

A value sealed with another key (SPECTRA_SECRET_KEY changed, or unset across a restart) reads as
``{"unreadable": "<why>"}`` instead of failing the whole query; the links inside would be refused anyway.
Plain values (written before migration 0006) read as they are.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Dialect
from sqlalchemy.types import TypeDecorator

from spectra.store.types import JSONType

SEALED: Final = "sealed"
UNREADABLE: Final = "unreadable"
# A key of its own for this use: sealing never yields anything a link token could be checked with.
_HKDF_INFO: Final = b"spectra/store/sealed-json/v1"


def sealing_secret() -> str:
    """SPECTRA_SECRET_KEY, or a random key for the life of this process."""
    return os.environ.get("SPECTRA_SECRET_KEY") or _ephemeral_secret()


@functools.cache
def _ephemeral_secret() -> str:
    return secrets.token_urlsafe(32)


@functools.lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(value: Any, secret: str | None = None) -> dict[str, str]:
    """``{"sealed": ...}`` holding ``value`` as JSON, encrypted."""
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return {SEALED: _fernet(secret or sealing_secret()).encrypt(plain).decode()}


def is_sealed(stored: Any) -> bool:
    return isinstance(stored, dict) and set(stored) == {SEALED} and isinstance(stored[SEALED], str)


def unseal(stored: Any, secret: str | None = None) -> Any:
    """What :func:`seal` sealed; a plain value as it is; ``{"unreadable": ...}`` under another key."""
    if not is_sealed(stored):
        return stored
    try:
        plain = _fernet(secret or sealing_secret()).decrypt(stored[SEALED].encode())
    except InvalidToken:
        return {UNREADABLE: "sealed with another SPECTRA_SECRET_KEY"}
    return json.loads(plain)


class SealedJSON(TypeDecorator[Any]):
    """A JSON column whose values are sealed (see the module docstring); NULL stays NULL."""

    impl = JSONType
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else seal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else unseal(value)
