"""Subscriber uniqueness, including whole-page subscriptions, on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import WHOLE_PAGE, Subscriber


def subscriber(email: str = "ops@example.com", component: str | None = None, page: str = "public") -> Subscriber:
    if component is None:
        return Subscriber(page_namespace="default", page_name=page, email=email)
    return Subscriber(page_namespace="default", page_name=page, email=email, component=component)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (subscriber, subscriber),  # whole page twice: the case NULL would have let through
        (lambda: subscriber(component="API"), lambda: subscriber(component="API")),
        (subscriber, lambda: subscriber(email="  OPS@Example.com ")),  # same address, other spelling
    ],
)
def test_duplicates_are_refused(session: Session, first: type[Subscriber], second: type[Subscriber]) -> None:
    session.add(first())
    session.commit()
    session.add(second())
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_distinct_subscriptions_coexist(session: Session) -> None:
    session.add_all(
        [
            subscriber(),
            subscriber(component="API"),
            subscriber(component="Website"),
            subscriber(page="internal"),
            subscriber(email="dev@example.com"),
        ]
    )
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 5


def test_whole_page_is_the_empty_component(session: Session) -> None:
    whole, one = subscriber(), subscriber(component="API")
    session.add_all([whole, one])
    session.commit()
    assert (whole.component, whole.whole_page, one.whole_page) == (WHOLE_PAGE, True, False)
    assert session.scalars(sa.select(Subscriber.email).where(Subscriber.component == WHOLE_PAGE)).all() == [
        "ops@example.com"
    ]


def test_longest_key_fits(session: Session) -> None:
    """The unique key at full length stays under InnoDB's 3072-byte limit (4 bytes a character)."""
    session.add(
        Subscriber(
            page_namespace="n" * 63,
            page_name="p" * 253,
            email=("é" * 200 + "@example.com").ljust(254, "x"),
            component="🚀" * 191,
        )
    )
    session.commit()
    assert session.scalars(sa.select(Subscriber.component)).one() == "🚀" * 191
