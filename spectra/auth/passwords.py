"""Passwords: argon2id hashes and the rules a new password must meet (NIST SP 800-63B, section 5.1.1).

Hashes carry their own parameters (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), so raising ours later
leaves every stored hash verifiable; `needs_rehash` tells sign-in to store a new one while it holds the
password. Passwords are NFKC-normalised before hashing, as 800-63B asks, so the same
password typed on another keyboard or input method (full-width letters, ligatures, composed accents)
still matches.

The rules are the ones 800-63B sets, and no composition rules (no "one digit, one symbol"): a length
between MIN_LENGTH and MAX_LENGTH code points, not in a list of breached passwords, not the account's
own email address, name or the service's name, not one character or a short part repeated, not a plain
run such as "abcdefghijkl". A list entry or one of those words with digits or symbols added at either
end counts as that entry ("password123456" is "password"), as password crackers try them first.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH: Final = 12
# 800-63B asks to accept at least 64. The bound is on what one sign-in feeds argon2 (whose own limit,
# 2**32-1 bytes, is no limit at all): a long passphrase fits, a megabyte of form field is refused unread.
MAX_LENGTH: Final = 256

# argon2id, 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended option (its "low memory" one) with
# one lane. One verification takes ~0.15 s on the 2-core machine this runs on (OWASP's minimum,
# m=19 MiB t=2, takes 0.02 s: we can afford three times the memory and more passes). One lane rather
# than RFC 9106's four: on two cores, four lanes of one sign-in only compete with the lanes of the next;
# a guess costs an attacker memory x passes whatever the lanes. Each verification running at once holds
# 64 MiB, so the web floor runs them on a bounded pool. Raise these and stored hashes upgrade as their
# owners sign in.
TIME_COST: Final = 3
MEMORY_COST_KIB: Final = 64 * 1024
PARALLELISM: Final = 1
_HASHER: Final = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM, hash_len=32, salt_len=16, type=Type.ID
)

# A hash of a throw-away value made with these parameters: sign-in verifies against it when no account
# has the email, so an unknown address costs the same time as a known one. A test keeps it in step.
DUMMY_HASH: Final = "$argon2id$v=19$m=65536,t=3,p=1$IKnJsgEpfTKz3DrtYzVwDA$U7zN3N8gqujAM86mXbkVPOEFlUotmAAC8XtbxSWmZQY"

SERVICE_NAMES: Final = ("spectramonitor", "spectra monitor", "spectra")

TOO_SHORT: Final = f"The password needs at least {MIN_LENGTH} characters."
TOO_LONG: Final = f"The password can have at most {MAX_LENGTH} characters."
BREACHED: Final = "This password appears in lists of breached passwords: choose another."
PERSONAL: Final = "The password must not be your email address, your name or the name of this service."
REPETITIVE: Final = "The password must not be one character or a short part repeated, nor a run such as abcdef."

# Characters people add around a word to satisfy composition rules; stripped when comparing with lists.
_DECORATION: Final = "0123456789!@#$%^&*()-_=+.,;:?~`'\"[]{}<>/\\| "
# Longer than this is refused before normalising it: composing accents shrinks a text, but no honest
# password by that much.
_RAW_LIMIT: Final = MAX_LENGTH * 4


def normalized(password: str) -> str:
    """The form that is hashed and measured: NFKC (800-63B section 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """An argon2id hash of the NFKC form of `password`, salt and parameters inside."""
    return _HASHER.hash(normalized(password))


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether `password` is the one `stored_hash` was made from. False, never an exception, for a
    malformed hash and for a password too long to have been set."""
    if len(password) > _RAW_LIMIT:
        return False
    text = normalized(password)
    if len(text) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash, text)
    except (VerificationError, InvalidHashError, UnicodeError):
        # VerifyMismatchError (wrong password) is a VerificationError; a hash that is not ASCII, not argon2
        # or cut short is one of the others.
        return False


def verify_unknown(password: str) -> bool:
    """Spend what `verify_password` spends, for an email no account has; always False."""
    verify_password(DUMMY_HASH, password)
    return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether `stored_hash` was made with other parameters (or another argon2 type) than ours:
    sign-in then stores `hash_password(password)`. True for a malformed hash."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError, UnicodeError):
        return True


def password_problem(password: str, *, email: str | None, display_name: str | None) -> str | None:
    """What is wrong with `password` as a new password for this account, as a sentence, or None."""
    if len(password) > _RAW_LIMIT:
        return TOO_LONG
    text = normalized(password)
    if len(text) < MIN_LENGTH:
        return TOO_SHORT
    if len(text) > MAX_LENGTH:
        return TOO_LONG
    folded = text.casefold()
    if _repeats(folded) or _is_run(folded):
        return REPETITIVE
    cores = _cores(folded)
    if not cores.isdisjoint(_breached()):
        return BREACHED
    if not cores.isdisjoint(_personal_words(email, display_name)):
        return PERSONAL
    return None


def _cores(folded: str) -> frozenset[str]:
    """The password and the word inside it with digits and symbols at its ends taken off."""
    return frozenset(
        core
        for core in (folded, folded.rstrip(_DECORATION), folded.lstrip(_DECORATION), folded.strip(_DECORATION))
        if core
    )


def _repeats(text: str) -> bool:
    """One character, or a part of at most half the length, repeated ("aaaa", "ababa", "passpass")."""
    # The prefix function (Knuth-Morris-Pratt): the longest proper prefix that is also a suffix; the text
    # repeats its first `len - that` characters, the last time maybe cut short.
    border = [0] * len(text)
    for i in range(1, len(text)):
        k = border[i - 1]
        while k and text[i] != text[k]:
            k = border[k - 1]
        border[i] = k + 1 if text[i] == text[k] else 0
    period = len(text) - border[-1] if text else 0
    return 0 < period <= len(text) // 2


def _is_run(text: str) -> bool:
    """Every character one after the previous, or one before ("abcdefghijkl", "98765432109876"); digits
    wrap around (9 then 0)."""
    steps = {_step(a, b) for a, b in itertools.pairwise(text)}
    return steps in ({1}, {-1})


def _step(a: str, b: str) -> int:
    if a.isdigit() and b.isdigit() and a.isascii() and b.isascii():
        difference = (int(b) - int(a)) % 10
        return {1: 1, 9: -1}.get(difference, 0)
    return ord(b) - ord(a)


@functools.cache
def _breached() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords of breach corpuses, most frequent first. Loaded on the
    # first check (~20 ms), not at import: most processes never check a new password.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]  # zxcvbn has no types

    entries: list[str] = FREQUENCY_LISTS["passwords"]
    return frozenset(entry.casefold() for entry in entries)


def _personal_words(email: str | None, display_name: str | None) -> frozenset[str]:
    words = set(SERVICE_NAMES)
    if email:
        address = normalized(email).strip().casefold()
        words.add(address)
        words.add(address.partition("@")[0])
    if display_name:
        name = normalized(display_name).strip().casefold()
        words.update((name, name.replace(" ", "")))
    words.discard("")
    return frozenset(words)
