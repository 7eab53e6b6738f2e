"""Security headers of everything we serve to browsers, defined once.

Nothing we serve may be framed, sniffed into another type, or leak its URL (links carry tokens) in a
Referer. Pages that act on a signed link (ack, confirm, unsubscribe) are never cached either, and their
Content-Security-Policy allows their own inline style and forms posting back to us, nothing else.
"""

from __future__ import annotations

from typing import Final

SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # links carry tokens: never to another site; our own forms keep their Origin
    "X-Frame-Options": "DENY",
}

# Data (JSON, feeds, SVG): nothing may run or load.
DATA_CSP: Final = "default-src 'none'; frame-ancestors 'none'"

# The small pages behind signed links: inline style, same-origin images and form posts only.
LINK_PAGE_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

LINK_PAGE_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Content-Security-Policy": LINK_PAGE_CSP}
