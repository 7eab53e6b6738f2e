"""Desired configuration: every resource as applied, plus the hot-path view of monitors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.types import BigIntPK, JSONType, utcnow

# Kubernetes limits: namespaces are DNS labels (63), object names DNS subdomains (253).
NAMESPACE_LEN = 63
NAME_LEN = 253
LOCATION_LEN = 63
SOURCE_FILE_LEN = 1024


class Resource(Base):
    """One applied custom resource of any kind, keyed by (kind, namespace, name)."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("kind", "namespace", "name"),
        Index(None, "source"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    uid: Mapped[str | None] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # sha256 hex of the canonical spec: reconcile skips unchanged resources without diffing JSON.
    spec_hash: Mapped[str] = mapped_column(String(64))
    # Where the resource came from: "files:/path/to/dir" or "cluster"; a source's stale rows go together.
    source: Mapped[str] = mapped_column(String(255))
    # The manifest file a standalone resource was read from (relative to the folder given to `spectra run`
    # or `spectra apply`, or as given); None in the cluster, where the source is namespace/name.
    source_file: Mapped[str | None] = mapped_column(String(SOURCE_FILE_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    monitor: Mapped[Monitor | None] = relationship(
        back_populates="resource", cascade="all, delete-orphan", passive_deletes=True
    )


class Monitor(Base):
    """The columns of a Monitor resource that probes and the alerter read on every cycle."""

    __tablename__ = "monitors"
    __table_args__ = (UniqueConstraint("namespace", "name"), MYSQL_TABLE_OPTIONS)

    resource_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    type: Mapped[str] = mapped_column(String(16))
    # For display only (URL, host:port, ...): secrets stay in resources.spec as references.
    target: Mapped[str] = mapped_column(String(2048))
    interval_ms: Mapped[int] = mapped_column(Integer)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    failure_threshold: Mapped[int] = mapped_column(Integer, default=1)
    success_threshold: Mapped[int] = mapped_column(Integer, default=1)
    escalation_policy: Mapped[str | None] = mapped_column(String(NAME_LEN))
    severity: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # Heartbeat monitors: sha256 hex of the push token (see spectra.store.heartbeats.push_token_hash).
    push_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)

    resource: Mapped[Resource] = relationship(back_populates="monitor")
    locations: Mapped[list[MonitorLocation]] = relationship(
        back_populates="monitor", cascade="all, delete-orphan", passive_deletes=True
    )


class MonitorLocation(Base):
    """A probe location a monitor runs in; indexed so "due monitors of location X" is a range scan."""

    __tablename__ = "monitor_locations"
    __table_args__ = (Index(None, "location"), MYSQL_TABLE_OPTIONS)

    monitor_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("monitors.resource_id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(LOCATION_LEN), primary_key=True)

    monitor: Mapped[Monitor] = relationship(back_populates="locations")


def load_spec(session: Session, kind: str, namespace: str, name: str) -> tuple[dict[str, Any], int] | None:
    """The stored spec and generation of one object, or None."""
    row = session.execute(
        select(Resource.spec, Resource.generation).where(
            Resource.kind == kind, Resource.namespace == namespace, Resource.name == name
        )
    ).first()
    return None if row is None else (dict(row.spec), int(row.generation))
