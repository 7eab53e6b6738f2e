"""Atom and RSS feeds: well-formed XML, escaped user text, incidents and maintenance newest first."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest

from spectra.statuspage.feeds import render_atom, render_rss
from spectra.statuspage.model import IncidentUpdateView, PageSnapshot
from tests.factories.pages import NOW, FakeCache, app_for, client_for, incident, maintenance, quiet_days, snapshot

A = "{http://www.w3.org/2005/Atom}"
XSS = '<script>alert(1)</script> & "friends"'
BASE = "https://status.example.test"


def busy_snapshot() -> PageSnapshot:
    past = list(quiet_days())
    resolved = incident(
        id_=3,
        title="Slow checkout",
        state="resolved",
        started_at=NOW - timedelta(days=2, hours=1),
        resolved_at=NOW - timedelta(days=2),
        updates=(IncidentUpdateView(NOW - timedelta(days=2), "resolved", "<p>Fixed.</p>"),),
    )
    past[2] = (past[2][0], (resolved,))
    active = incident(title=f"Errors {XSS}", components=(XSS,))
    return snapshot(
        title=f"Acme {XSS}", active_incidents=(active,), past_incidents=tuple(past), maintenance=(maintenance(),)
    )


def test_atom_parses_and_escapes() -> None:
    body = render_atom(busy_snapshot(), BASE)
    assert b"<script>" not in body
    root = ET.fromstring(body)
    assert root.tag == f"{A}feed"
    assert root.findtext(f"{A}title") == f"Acme {XSS} status"
    assert root.findtext(f"{A}id") == f"{BASE}/s/acme/feed.atom"
    entries = root.findall(f"{A}entry")
    titles = [e.findtext(f"{A}title") for e in entries]
    # Newest first: upcoming maintenance (tomorrow), the active incident, then the resolved one.
    assert titles == ["[Scheduled] Database upgrade", f"[Investigating] Errors {XSS}", "[Resolved] Slow checkout"]
    content = entries[1].find(f"{A}content")
    assert content is not None
    assert content.get("type") == "html"
    assert "<p>We are <strong>looking</strong>.</p>" in (content.text or "")  # sanitized html, as escaped text
    assert "&lt;script&gt;" in (content.text or "")  # the component name is escaped once more inside that html
    ids = [e.findtext(f"{A}id") for e in entries]
    assert len(set(ids)) == 3
    assert all(e.findtext(f"{A}updated", "").endswith("Z") for e in entries)


def test_rss_parses_and_escapes() -> None:
    body = render_rss(busy_snapshot(), BASE)
    root = ET.fromstring(body)
    assert root.tag == "rss"
    assert root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    assert channel.findtext("title") == f"Acme {XSS} status"
    assert channel.findtext("link") == f"{BASE}/s/acme"
    items = channel.findall("item")
    assert [i.findtext("title") for i in items][1] == f"[Investigating] Errors {XSS}"
    assert all((i.findtext("pubDate") or "").endswith("GMT") for i in items)
    assert all(i.find("guid") is not None for i in items)


def test_empty_feed_is_valid() -> None:
    root = ET.fromstring(render_atom(snapshot(), BASE))
    assert root.findall(f"{A}entry") == []
    rss = ET.fromstring(render_rss(snapshot(), BASE))
    assert rss.findall("channel/item") == []


@pytest.mark.parametrize(
    ("path", "media"), [("/s/acme/feed.atom", "application/atom+xml"), ("/s/acme/feed.rss", "application/rss+xml")]
)
async def test_feed_routes(path: str, media: str) -> None:
    async with client_for(app_for(FakeCache(busy_snapshot())), base_url=BASE) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    root = ET.fromstring(response.content)
    assert f"{BASE}/s/acme" in response.text
    assert root is not None
