"""Sealed JSON: values are encrypted at rest and read back whole; another key reads as unreadable, never as
an error; migration 0006 seals the outbox rows still to be sent and empties the others, on SQLite and
MariaDB, and its downgrade opens them again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import Notification, downgrade, make_engine, session_factory, upgrade
from spectra.store.sealing import SEALED, UNREADABLE, is_sealed, seal, unseal

KEY = "sealing-test-key-0123456789abcdef0123456789"
ACK_LINK = "https://spectra.example.test/ack/eyJpIjo0Mn0.axXwfw.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", KEY)


@pytest.mark.parametrize(
    "value",
    [{}, {"text": f"Acknowledge: {ACK_LINK}", "facts": {"ack_url": ACK_LINK, "n": 3}}, ["a", 1, None], "ü ✓ \x00"],
    ids=["empty", "message", "list", "unicode"],
)
def test_sealed_values_hide_their_content_and_read_back_whole(value: Any) -> None:
    sealed = seal(value)
    assert is_sealed(sealed)
    assert ACK_LINK not in repr(sealed)
    assert "ack_url" not in repr(sealed)
    assert unseal(sealed) == value


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"text": "plain, from before 0006"}, {"text": "plain, from before 0006"}),
        ({SEALED: "not a fernet token"}, {UNREADABLE: "sealed with another SPECTRA_SECRET_KEY"}),
        ({SEALED: 42}, {SEALED: 42}),  # not ours: left as it is
        (None, None),
    ],
    ids=["plain", "garbage", "not-a-string", "null"],
)
def test_unseal_takes_plain_and_foreign_values_without_failing(stored: Any, expected: Any) -> None:
    assert unseal(stored) == expected


def test_another_key_reads_as_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = seal({"text": ACK_LINK})
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "another-key-0123456789abcdef0123456789")
    assert unseal(sealed) == {UNREADABLE: "sealed with another SPECTRA_SECRET_KEY"}
    assert unseal(sealed, KEY) == {"text": ACK_LINK}


def test_the_model_column_seals_on_write(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(
            Notification(idempotency_key="k", channel="email", recipient="a@x.test", payload={"text": ACK_LINK})
        )
    with sessions() as session:
        [raw] = session.execute(sa.text("SELECT payload FROM notifications")).scalars()
        assert ACK_LINK not in str(raw)
        assert session.scalars(sa.select(Notification.payload)).one() == {"text": ACK_LINK}


OLD_ROWS = [  # (status, payload) as 0005 stored them
    ("pending", {"text": f"Acknowledge: {ACK_LINK}", "facts": {"ack_url": ACK_LINK}}),
    ("failed", {"text": f"Acknowledge: {ACK_LINK}"}),
    ("sending", {"html": f'<a href="{ACK_LINK}">ack</a>'}),
    ("sent", {"text": f"Acknowledge: {ACK_LINK}"}),
    ("dead", {"text": f"Acknowledge: {ACK_LINK}"}),
]


def raw_payloads(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT status, payload FROM notifications ORDER BY id"))
        return [(str(status), str(payload)) for status, payload in rows]


def test_migration_0006_seals_pending_rows_and_empties_the_rest(database_url: str) -> None:
    upgrade(database_url, "0005")
    engine = make_engine(database_url)
    try:
        table = sa.table(
            "notifications",
            *(sa.column(name) for name in ("idempotency_key", "channel", "recipient", "status", "attempts")),
            sa.column("payload", sa.JSON()),
            sa.column("next_attempt_at", sa.DateTime()),
            sa.column("created_at", sa.DateTime()),
        )
        with engine.begin() as connection:
            for index, (status, payload) in enumerate(OLD_ROWS):
                connection.execute(
                    sa.insert(table).values(
                        idempotency_key=f"k{index}",
                        channel="email",
                        recipient="a@x.test",
                        status=status,
                        attempts=0,
                        payload=payload,
                        next_attempt_at=NOW.replace(tzinfo=None),
                        created_at=NOW.replace(tzinfo=None),
                    )
                )
        assert all(ACK_LINK in payload for _, payload in raw_payloads(engine))

        upgrade(database_url)
        assert not any(ACK_LINK in payload for _, payload in raw_payloads(engine))
        with session_factory(engine)() as session:
            read = [
                (row.status, row.payload) for row in session.scalars(sa.select(Notification).order_by(Notification.id))
            ]
        assert read == [(status, payload if status not in ("sent", "dead") else {}) for status, payload in OLD_ROWS]

        downgrade(database_url, "0005")  # the old code reads plain bodies again; emptied ones stay empty
        assert [ACK_LINK in payload for _, payload in raw_payloads(engine)] == [True, True, True, False, False]
    finally:
        engine.dispose()
