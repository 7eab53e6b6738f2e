"""Atom and RSS feeds of a page's incidents and maintenance, built with ElementTree (so always escaped XML).

Entries: active incidents, incidents of the past days, active and upcoming maintenance; newest first.
Entry content is the incident's updates (sanitized HTML from the model) as escaped ``type="html"`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from spectra.runtime.timefmt import iso_utc, utc, utc_text
from spectra.statuspage.formatting import state_label
from spectra.statuspage.model import MaintenanceView, PageIncidentView, PageSnapshot

ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class Entry:
    key: str
    title: str
    updated: datetime
    published: datetime
    html: str


def _incident_entry(incident: PageIncidentView) -> Entry:
    parts = [
        f"<p><strong>{_text(_UPDATE_LABELS.get(u.state) or state_label(u.state))}"
        f"</strong> ({_text(utc_text(u.at))})</p>{u.body_html}"
        for u in sorted(incident.updates, key=lambda u: u.at, reverse=True)
    ]
    if incident.components:
        parts.append(f"<p>Affected: {_text(', '.join(incident.components))}</p>")
    moments = [incident.started_at, *(u.at for u in incident.updates)]
    if incident.resolved_at is not None:
        moments.append(incident.resolved_at)
    updated = max(moments, key=utc)
    state = "Resolved" if incident.resolved_at is not None else _UPDATE_LABELS.get(incident.state, incident.state)
    return Entry(f"incident-{incident.id}", f"[{state}] {incident.title}", updated, incident.started_at, "".join(parts))


def _maintenance_entry(window: MaintenanceView) -> Entry:
    when = f"{utc_text(window.start)} to {utc_text(window.end)}"
    html = f"<p>Scheduled maintenance: {_text(when)}</p>" + (window.message_html or "")
    if window.components:
        html += f"<p>Affected: {_text(', '.join(window.components))}</p>"
    label = "In progress" if window.active else "Scheduled"
    key = f"maintenance-{window.name}-{iso_utc(window.start)}"
    return Entry(key, f"[{label}] {window.name}", window.start, window.start, html)


_UPDATE_LABELS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def entries(snapshot: PageSnapshot) -> list[Entry]:
    seen: dict[int, PageIncidentView] = {}
    for incident in snapshot.active_incidents:
        seen[incident.id] = incident
    for _day, incidents in snapshot.past_incidents:
        for incident in incidents:
            seen.setdefault(incident.id, incident)
    result = [_incident_entry(i) for i in seen.values()] + [_maintenance_entry(m) for m in snapshot.maintenance]
    return sorted(result, key=lambda e: utc(e.updated), reverse=True)


def _serialize(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def render_atom(snapshot: PageSnapshot, base_url: str) -> bytes:
    page_url = f"{base_url.rstrip('/')}/s/{snapshot.slug}"
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    items = entries(snapshot)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", f"{page_url}/feed.atom")
    sub(feed, "title", f"{snapshot.title} status")
    sub(feed, "updated", iso_utc(max([snapshot.generated_at, *(e.updated for e in items)], key=utc)))
    sub(feed, "link", rel="alternate", type="text/html", href=page_url)
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{page_url}/feed.atom")
    author = sub(feed, "author")
    sub(author, "name", snapshot.title)
    for item in items:
        entry = sub(feed, "entry")
        sub(entry, "id", f"{page_url}#{item.key}")
        sub(entry, "title", item.title)
        sub(entry, "updated", iso_utc(item.updated))
        sub(entry, "published", iso_utc(item.published))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{page_url}#{item.key}")
        sub(entry, "content", item.html, type="html")
    return _serialize(feed)


def render_rss(snapshot: PageSnapshot, base_url: str) -> bytes:
    page_url = f"{base_url.rstrip('/')}/s/{snapshot.slug}"
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = f"{snapshot.title} status"
    ET.SubElement(channel, "link").text = page_url
    ET.SubElement(channel, "description").text = f"Incidents and maintenance of {snapshot.title}"
    ET.SubElement(channel, "lastBuildDate").text = format_datetime(utc(snapshot.generated_at), usegmt=True)
    for item in entries(snapshot):
        node = ET.SubElement(channel, "item")
        ET.SubElement(node, "title").text = item.title
        ET.SubElement(node, "link").text = f"{page_url}#{item.key}"
        ET.SubElement(node, "guid", isPermaLink="false").text = f"{page_url}#{item.key}"
        ET.SubElement(node, "pubDate").text = format_datetime(utc(item.updated), usegmt=True)
        ET.SubElement(node, "description").text = item.html
    return _serialize(rss)
