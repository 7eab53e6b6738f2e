"""Passwords: argon2id hashes that verify, upgrade when the parameters are raised and never raise on a
bad hash; the NIST 800-63B rules, after NFKC normalisation, with messages a person understands."""

from __future__ import annotations

import time
import unicodedata

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from spectra.auth import passwords
from spectra.auth.passwords import (
    BREACHED,
    DUMMY_HASH,
    MAX_LENGTH,
    PERSONAL,
    REPETITIVE,
    TOO_LONG,
    TOO_SHORT,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
    verify_unknown,
)

EMAIL = "Alice.Smith@acme.example"
NAME = "Alice Smith"
PASSPHRASE = "correct horse battery staple"
# 256 characters that do not repeat themselves (a repeated phrase is refused as repetitive).
LONGEST = " ".join(f"word{i}" for i in range(60))[:MAX_LENGTH]


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        # length, in code points after NFKC
        ("", TOO_SHORT),
        ("Shorter1!", TOO_SHORT),
        ("Tr0ub4dor&3", TOO_SHORT),  # 11
        ("Tr0ub4dor&3x", None),  # 12
        ("".join(f"{letter}\u0301" for letter in "naeiouycszl"), TOO_SHORT),  # 22 typed, 11 once accents compose
        ("\u337f\u3314\u3349\u3392\ufb03", None),  # 5 typed, 14 after NFKC (square kanji, MHz, ffi)
        (LONGEST, None),
        (LONGEST + "!", TOO_LONG),  # 257
        ("x" * 10_000, TOO_LONG),  # refused before it is normalised
        # breached, in any case, with digits and symbols added, or typed full-width
        ("password123456", BREACHED),
        ("qwerty123456", BREACHED),
        ("leavemealone", BREACHED),
        ("LeaveMeAlone", BREACHED),
        ("Password123456!", BREACHED),
        ("!!2024dragon2024!!", BREACHED),
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11\uff12\uff13\uff14", BREACHED),  # full-width
        # the account's own words, and the service's
        ("alice.smith@acme.example", PERSONAL),
        ("ALICE.SMITH@ACME.EXAMPLE", PERSONAL),
        ("alice.smith1234", PERSONAL),
        ("Alice Smith", TOO_SHORT),  # 11: the length is told first
        ("Alice Smith!", PERSONAL),
        ("AliceSmith2024", PERSONAL),
        ("SpectraMonitor2024", PERSONAL),
        # repeated or a plain run
        ("aaaaaaaaaaaa", REPETITIVE),
        ("\uff41" * 12, REPETITIVE),  # full-width a: the same letter after NFKC
        ("abcabcabcabc", REPETITIVE),
        ("passwordpassword", REPETITIVE),
        ((PASSPHRASE + " ") * 3, REPETITIVE),
        ("abcdefghijklmn", REPETITIVE),
        ("123456789012", REPETITIVE),
        ("9876543210987", REPETITIVE),
        # good
        (PASSPHRASE, None),
        ("Gr3en-teapot Lighthouse", None),
        ("\u00dcn\u00efc\u00f6d\u00e9 p\u00e4ssw\u00f6rd ok", None),
        ("horse battery staple horse", None),  # repeats a word, not itself
    ],
)
def test_password_rules(password: str, problem: str | None) -> None:
    assert password_problem(password, email=EMAIL, display_name=NAME) == problem


def test_rules_without_email_or_name() -> None:
    assert password_problem("alice.smith1234", email=None, display_name=None) is None
    assert password_problem("alice.smith1234", email="", display_name="") is None
    assert password_problem("spectra-2024!", email=None, display_name=None) == PERSONAL


def test_messages_are_sentences_a_person_understands() -> None:
    assert TOO_SHORT == "The password needs at least 12 characters."
    assert TOO_LONG == "The password can have at most 256 characters."
    assert BREACHED == "This password appears in lists of breached passwords: choose another."


def test_hash_verifies_the_password_and_only_it() -> None:
    stored = hash_password(PASSPHRASE)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert PASSPHRASE not in stored
    assert verify_password(stored, PASSPHRASE)
    assert not verify_password(stored, PASSPHRASE.upper())
    assert not verify_password(stored, PASSPHRASE + " ")
    assert not verify_password(stored, "")
    assert hash_password(PASSPHRASE) != stored  # a salt of its own each time
    assert not needs_rehash(stored)


def test_the_same_password_typed_another_way_verifies() -> None:
    composed = "\u00dcn\u00efc\u00f6d\u00e9 p\u00e4ssw\u00f6rd ok"
    stored = hash_password(composed)
    assert verify_password(stored, unicodedata.normalize("NFD", composed))  # accents typed as combining marks
    wide = hash_password("Gr3en-teapot")
    assert verify_password(wide, "\uff27\uff52\uff13\uff45\uff4e\uff0d\uff54\uff45\uff41\uff50\uff4f\uff54")


def test_a_password_too_long_to_have_been_set_is_refused_unread() -> None:
    stored = hash_password(LONGEST)
    assert verify_password(stored, LONGEST)
    assert not verify_password(stored, LONGEST + "!")
    assert not verify_password(stored, "x" * 1_000_000)


# hash_password(PASSPHRASE), written out: made at import, it would cost every test run's collection.
GOOD = "$argon2id$v=19$m=65536,t=3,p=1$pHmHGaGFZv045EdlzlLKxw$HufLMzbK8fxSK8gF6gphK+YOYOKEI+rQSpLzTcPCOJ0"


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=65536,t=3,p=1$",
        GOOD[:-10],  # cut short
        GOOD[:-4] + "AAAA",  # another digest
        GOOD.replace("m=65536", "m=65537"),  # parameters changed
        "$argon2id$v=19$m=65536,t=3,p=1$\u00fc\u00fc\u00fc\u00fc$\u00fc\u00fc\u00fc\u00fc",  # not ASCII
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "$argon2id$v=19$m=abc,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    ],
)
def test_a_malformed_hash_verifies_nothing_and_raises_nothing(stored: str) -> None:
    assert verify_password(GOOD, PASSPHRASE)  # what the cases spoil
    assert verify_password(stored, PASSPHRASE) is False
    assert needs_rehash(stored) or stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")


@pytest.mark.parametrize(
    "older",
    [
        PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1),  # weaker parameters
        PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4),  # argon2-cffi's default lanes
        PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, type=Type.I),  # argon2i
    ],
)
def test_a_hash_made_with_other_parameters_verifies_and_asks_to_be_rehashed(older: PasswordHasher) -> None:
    stored = older.hash(PASSPHRASE)
    assert verify_password(stored, PASSPHRASE)
    assert not verify_password(stored, "wrong " + PASSPHRASE)
    assert needs_rehash(stored)
    upgraded = hash_password(PASSPHRASE)
    assert not needs_rehash(upgraded)
    assert verify_password(upgraded, PASSPHRASE)


def test_the_dummy_hash_costs_what_a_real_one_costs() -> None:
    # Same parameters as every fresh hash: an unknown email takes the time a known one takes.
    assert not needs_rehash(DUMMY_HASH)
    assert extract_parameters(DUMMY_HASH) == extract_parameters(hash_password(PASSPHRASE))
    assert verify_unknown(PASSPHRASE) is False
    assert verify_unknown("spectra-dummy-not-a-password") is False  # whatever the dummy's own value is


def test_login_time_is_measured() -> None:
    """Prints what one sign-in costs with the chosen parameters (no budget: the machine is shared)."""
    runs = 5
    started = time.perf_counter()
    stored = hash_password(PASSPHRASE)
    hash_s = time.perf_counter() - started
    verify_times, unknown_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        assert verify_password(stored, PASSPHRASE)
        verify_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        verify_unknown(PASSPHRASE)
        unknown_times.append(time.perf_counter() - started)
    verify_s = sorted(verify_times)[runs // 2]
    unknown_s = sorted(unknown_times)[runs // 2]
    print(
        f"\nargon2id t={passwords.TIME_COST} m={passwords.MEMORY_COST_KIB} KiB p={passwords.PARALLELISM}: "
        f"hash {hash_s * 1000:.0f} ms, verify (sign-in) median {verify_s * 1000:.0f} ms, "
        f"unknown email median {unknown_s * 1000:.0f} ms"
    )
