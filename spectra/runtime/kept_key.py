"""The secret key `spectra run` keeps on disk when SPECTRA_SECRET_KEY is not set.

SPECTRA_SECRET_KEY signs links and access tokens and seals TOTP secrets and outbox bodies. A cluster sets
it from a Secret. Standalone, a random key per process would make every restart a lockout: each enrolled
authenticator, recovery code, session and emailed link dead at once. So `spectra run` keeps one, as
Jupyter keeps its cookie secret: made once at the first start (32 random bytes, URL-safe), in a file
readable by its owner only, outside the database (a copied database alone opens no sealed value), and
read again at every start. `spectra users add` on a SQLite database (standalone's) signs with it too, so
its setup link opens on that server.

Where: `$SPECTRA_SECRET_KEY_FILE`, else `$XDG_DATA_HOME/spectra/secret-key` (default
`~/.local/share/spectra/secret-key`). SPECTRA_SECRET_KEY, when set, wins and nothing is read or written.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KEY_ENV: Final = "SPECTRA_SECRET_KEY"
FILE_ENV: Final = "SPECTRA_SECRET_KEY_FILE"
MIN_KEY_CHARS: Final = 32


class KeptKeyError(Exception):
    """The key file cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class KeptKey:
    path: Path
    made: bool  # made now (the first start), not read
    loose: bool  # others than its owner may read it


def key_file() -> Path:
    configured = os.environ.get(FILE_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "spectra" / "secret-key"


def keep_secret_key() -> KeptKey | None:
    """Set SPECTRA_SECRET_KEY for this process (and its children) from the kept file, making it the first
    time; None when SPECTRA_SECRET_KEY is set already. KeptKeyError when the file is unusable."""
    if os.environ.get(KEY_ENV):
        return None
    path = key_file()
    key, made = _read_or_make(path)
    os.environ[KEY_ENV] = key
    loose = bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    return KeptKey(path, made, loose)


def _read_or_make(path: Path) -> tuple[str, bool]:
    if path.exists():
        return _read(path), False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written aside, then linked into place: a process starting at the same moment reads a whole key
        # or makes none of its own (link fails when the name exists).
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            return _read(path), False
        finally:
            draft.unlink()
    except OSError as failed:
        raise KeptKeyError(
            f"cannot keep the secret key in {path}: {failed.strerror or failed}; "
            f"set {KEY_ENV}, or {FILE_ENV} to a writable place"
        ) from None
    return _read(path), True


def _read(path: Path) -> str:
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as failed:
        raise KeptKeyError(f"cannot read the secret key in {path}: {failed}") from None
    if len(key) < MIN_KEY_CHARS or any(char.isspace() for char in key):
        raise KeptKeyError(
            f"{path} does not hold a secret key (one line of at least {MIN_KEY_CHARS} characters); "
            f"remove it to make a new one (links, sessions and two-factor set-ups made with the old one stop "
            f"working) or set {KEY_ENV}"
        )
    return key
