"""Link tokens: signed, single-purpose, expiring; every bad token is refused without details."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from spectra.tokens import InvalidToken, Purpose, Tokens, secret_key

DAY = 24 * 3600


def test_round_trip() -> None:
    tokens = Tokens("k" * 32)
    token = tokens.make(Purpose.ACK, {"i": 42})
    assert tokens.read(Purpose.ACK, token, max_age_s=DAY) == {"i": 42}


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "not valid"),  # tampered signature
        (lambda t: "x" + t, "not valid"),  # tampered payload
        (lambda t: "", "not valid"),
        (lambda t: "garbage.token.value", "not valid"),
    ],
)
def test_tampered_tokens_are_refused(mutate: Callable[[str], str], words: str) -> None:
    tokens = Tokens("k" * 32)
    token = tokens.make(Purpose.ACK, {"i": 1})
    with pytest.raises(InvalidToken, match=words):
        tokens.read(Purpose.ACK, mutate(token), max_age_s=DAY)


def test_token_for_another_purpose_is_refused() -> None:
    tokens = Tokens("k" * 32)
    unsubscribe = tokens.make(Purpose.UNSUBSCRIBE, {"i": 1})
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.ACK, unsubscribe, max_age_s=DAY)


def test_token_signed_with_another_key_is_refused() -> None:
    foreign = Tokens("other-key-" * 4).make(Purpose.ACK, {"i": 1})
    with pytest.raises(InvalidToken):
        Tokens("k" * 32).read(Purpose.ACK, foreign, max_age_s=DAY)


def test_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens("k" * 32)
    real = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real() - 2 * DAY)
    old = tokens.make(Purpose.ACK, {"i": 1})
    monkeypatch.setattr("itsdangerous.timed.time.time", real)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.read(Purpose.ACK, old, max_age_s=DAY)


def test_secret_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "from-env")
    assert secret_key() == "from-env"
    monkeypatch.delenv("SPECTRA_SECRET_KEY")
    assert secret_key() == secret_key()  # one random key per process
    assert secret_key() != "from-env"
