"""The configured public URL (SPECTRA_PUBLIC_URL): the one base every absolute link is built from.

When it is unset, a process falls back to its listen address for mails, and the status pages' feeds use
the request's Host (see spectra.statuspage.pages): such answers are then marked private and vary by Host.
"""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import urlsplit

PUBLIC_URL_ENV: Final = "SPECTRA_PUBLIC_URL"


def configured_public_url() -> str | None:
    """SPECTRA_PUBLIC_URL without its trailing slash, or None when it is unset or empty."""
    return os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/") or None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of `url`, lower-cased, as a browser writes it in an Origin header."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"
