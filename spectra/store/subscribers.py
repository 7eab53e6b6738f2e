"""Status-page subscribers (double opt-in e-mail subscriptions)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from spectra.store.base import MYSQL_TABLE_OPTIONS, Base
from spectra.store.config import NAME_LEN, NAMESPACE_LEN
from spectra.store.types import BigIntPK, UTCDateTime, utcnow

# The unique key (namespace, page, email, component) must fit InnoDB's 3072-byte limit at 4 bytes a
# character: 63 + 253 + 254 + 191 = 761 characters. 254 is the longest address SMTP can carry
# (RFC 5321 path limit); component names are display labels.
SUBSCRIBER_EMAIL_LEN: Final = 254
COMPONENT_LEN: Final = 191
WHOLE_PAGE: Final = ""


class Subscriber(Base):
    """One address subscribed to a status page, or to one component of it.

    ``component`` is ``''`` (:data:`WHOLE_PAGE`) for a whole-page subscription, never NULL: MySQL
    and SQLite treat NULLs as distinct in unique keys, so NULL would allow duplicate whole-page
    subscriptions. Addresses are stored lower-cased (by the ORM) so case variants collide.
    """

    __tablename__ = "subscribers"
    __table_args__ = (
        UniqueConstraint("page_namespace", "page_name", "email", "component"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    page_namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    page_name: Mapped[str] = mapped_column(String(NAME_LEN))
    email: Mapped[str] = mapped_column(String(SUBSCRIBER_EMAIL_LEN))
    component: Mapped[str] = mapped_column(String(COMPONENT_LEN), default=WHOLE_PAGE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return value.strip().lower()

    @property
    def whole_page(self) -> bool:
        return self.component == WHOLE_PAGE
