"""Secret values out of check results: what a target echoes back never becomes a reason or a fact.

A target controls its answer, so it can reflect a request header (an Authorization value from a Secret)
into its body, a response header, a redirect URL or its status line; expectations then quote it in the
reason ("header x is 'Bearer s3cr...'"), and reasons and facts go to the monitor API, the results tables,
status pages, notifications. Rather than trusting every checker and assertion, one place does it:
``run_check`` collects every value :meth:`CheckContext.secret` resolves while the check runs
(:func:`collecting`, a context variable: concurrent checks never see each other's values) and passes the
result through :meth:`ResolvedSecrets.scrub_result` before it leaves.

Each value is searched in the forms it is likely to come back in: as is, URL-encoded (either case of hex),
JSON- and HTML-escaped, base64 (standard and URL-safe, padded or not), and for a credential
(``Basic dXNlcjpwdw==``, ``Bearer abc``, ``user:password``) its parts: the part after the scheme, the
decoded ``user:password`` and the password. Forms shorter than :data:`MIN_FORM_LEN` are left (they would
redact ordinary words); any run of at least :data:`FRAGMENT_LEN` characters of a form is redacted too, so
a value shortened in a quote ("'Bearer eyJhbGciOi...'") or cut by a size limit does not leak in part.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote, quote_plus

from spectra.probe.result import CheckResult
from spectra.runtime.redaction import REDACTED

MIN_FORM_LEN: Final = 4
FRAGMENT_LEN: Final = 12
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\s+(\S+)$")  # "Basic xyz", "Bearer xyz", "token xyz"
_USER_PASSWORD = re.compile(r"^[^\s:/]+:(\S+)$")

_resolved: ContextVar[ResolvedSecrets | None] = ContextVar("spectra_probe_resolved_secrets", default=None)


def note_resolved(value: str) -> None:
    """Called for every secret value a check resolves; remembered for the check being collected, if any."""
    collector = _resolved.get()
    if collector is not None:
        collector.add(value)


@contextlib.contextmanager
def collecting() -> Iterator[ResolvedSecrets]:
    """The secret values resolved inside this block (in this task and the tasks it starts)."""
    collector = ResolvedSecrets()
    token = _resolved.set(collector)
    try:
        yield collector
    finally:
        _resolved.reset(token)


def _forms(value: str) -> set[str]:
    """``value`` and what it may come back as."""
    forms = {value}
    scheme = _SCHEME.match(value)
    if scheme:
        credential = scheme.group(1)
        forms.add(credential)
        with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
            forms.add(base64.b64decode(credential, validate=True).decode())  # Basic: user:password
    for form in list(forms):
        password = _USER_PASSWORD.match(form)
        if password:
            forms.add(password.group(1))
    encoded: set[str] = set()
    for form in forms:
        raw = form.encode()
        for url_form in (quote(form, safe=""), quote(form), quote_plus(form)):
            encoded.update({url_form, _PERCENT_HEX.sub(lambda hex_: hex_.group().lower(), url_form)})
        encoded.update({json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1], html.escape(form)})
        for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            encoded.update({b64, b64.rstrip("=")})
    return {form for form in forms | encoded if len(form) >= MIN_FORM_LEN}


@dataclass
class ResolvedSecrets:
    """The secret values of one check, and how to take them out of its result."""

    values: set[str] = field(default_factory=set)
    _pattern: re.Pattern[str] | None = None
    _fragments: frozenset[str] = frozenset()

    def add(self, value: str) -> None:
        if value and value not in self.values:
            self.values.add(value)
            self._pattern = None

    def _compile(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.values:
            forms = set().union(*(_forms(value) for value in self.values))
            if not forms:
                return None
            # Longest first, so a value that contains another is replaced whole.
            self._pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
            self._fragments = frozenset(
                form[start : start + FRAGMENT_LEN] for form in forms for start in range(len(form) - FRAGMENT_LEN + 1)
            )
        return self._pattern

    def scrub(self, text: str) -> str:
        pattern = self._compile()
        if pattern is None:
            return text
        text = pattern.sub(REDACTED, text)
        return self._scrub_fragments(text) if self._fragments else text

    def _scrub_fragments(self, text: str) -> str:
        """Redact every run of text made of FRAGMENT_LEN-long pieces of a secret's forms."""
        hidden = bytearray(len(text))
        found = False
        for start in range(len(text) - FRAGMENT_LEN + 1):
            if text[start : start + FRAGMENT_LEN] in self._fragments:
                hidden[start : start + FRAGMENT_LEN] = b"\x01" * FRAGMENT_LEN
                found = True
        if not found:
            return text
        pieces: list[str] = []
        index = 0
        while index < len(text):
            if hidden[index]:
                while index < len(text) and hidden[index]:
                    index += 1
                pieces.append(REDACTED)
            else:
                pieces.append(text[index])
                index += 1
        return "".join(pieces)

    def scrub_value(self, value: Any) -> Any:
        """Strings scrubbed anywhere in a JSON-like value (keys too); other values as they are."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub_value(key): self.scrub_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(item) for item in value]
        return value

    def scrub_result(self, result: CheckResult) -> CheckResult:
        if not self.values:
            return result  # the common case: nothing resolved, nothing to do
        return replace(result, reason=self.scrub(result.reason), facts=self.scrub_value(result.facts))
