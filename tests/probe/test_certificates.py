"""Certificate facts parsed from real DER certificates made by trustme."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from spectra.probe.certificates import CertificateInfo, expiry_reason, parse_der, verify_failure_reason

from .servers import leaf

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def der_of(cert: trustme.LeafCert) -> bytes:
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def info(not_after: datetime, dns_names: tuple[str, ...] = ("a.test",), ips: tuple[str, ...] = ()) -> CertificateInfo:
    return CertificateInfo(
        subject="CN=a.test",
        common_name="a.test",
        issuer="CN=Test CA",
        not_before=NOW - timedelta(days=30),
        not_after=not_after,
        dns_names=dns_names,
        ip_addresses=ips,
        serial="1",
    )


def test_parse_der_reads_names_dates_and_issuer() -> None:
    ca = trustme.CA(organization_name="Spectra Test CA")
    cert = leaf(ca, "spectra.test", "*.apps.test", "127.0.0.1", days=30)
    parsed = parse_der(der_of(cert))
    assert parsed.dns_names == ("spectra.test", "*.apps.test")
    assert parsed.ip_addresses == ("127.0.0.1",)
    assert "Spectra Test CA" in parsed.issuer
    assert parsed.days_left() == 30
    assert not parsed.expired()
    facts = parsed.facts()
    assert facts["certificate_days_left"] == 30
    assert facts["certificate_sans"] == ["spectra.test", "*.apps.test", "127.0.0.1"]
    assert datetime.fromisoformat(facts["certificate_expires_at"]) == parsed.not_after
    assert facts["certificate_issuer"] == parsed.issuer


def test_parse_der_of_expired_certificate() -> None:
    parsed = parse_der(der_of(leaf(trustme.CA(), "old.test", expired_days_ago=3)))
    assert parsed.expired()
    assert parsed.days_left() == -3


@pytest.mark.parametrize(
    ("left", "days"),
    [
        (timedelta(days=5), 5),
        (timedelta(days=5, seconds=-1), 5),  # issued "for 5 days" a moment ago still reads 5
        (timedelta(days=5, hours=11), 5),
        (timedelta(days=5, hours=13), 6),
        (timedelta(hours=1), 0),
        (timedelta(0), 0),
        (timedelta(days=-1), -1),
        (timedelta(days=-2, seconds=-5), -2),
    ],
)
def test_days_left_rounds_to_the_nearest_day(left: timedelta, days: int) -> None:
    assert info(NOW + left).days_left(NOW) == days


@pytest.mark.parametrize(
    ("names", "ips", "host", "matches"),
    [
        (("a.test",), (), "a.test", True),
        (("a.test",), (), "A.Test.", True),
        (("a.test",), (), "b.test", False),
        (("*.apps.test",), (), "x.apps.test", True),
        (("*.apps.test",), (), "apps.test", False),
        (("*.apps.test",), (), "y.x.apps.test", False),
        (("*.test",), (), "x.test", False),  # no wildcard right under a single label
        ((), ("127.0.0.1",), "127.0.0.1", True),
        ((), ("::1",), "[0:0::1]", True),
        (("127.0.0.1",), (), "127.0.0.1", False),  # an IP must be an IP SAN, not a DNS name
        ((), (), "a.test", False),  # the common name alone does not count
    ],
)
def test_hostname_matching(names: tuple[str, ...], ips: tuple[str, ...], host: str, matches: bool) -> None:
    assert info(NOW + timedelta(days=1), names, ips).matches(host) is matches


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (5, "certificate expires in 5 days"),
        (1, "certificate expires in 1 day"),
        (0, "certificate expires in 0 days"),
        (-1, "certificate expired 1 day ago"),
        (-7, "certificate expired 7 days ago"),
    ],
)
def test_expiry_reason(days: int, text: str) -> None:
    assert expiry_reason(days) == text


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


@pytest.mark.parametrize(
    ("code", "message", "not_after", "reason"),
    [
        (62, "Hostname mismatch", NOW + timedelta(days=9), "certificate is for a.test, not b.test"),
        (10, "certificate has expired", NOW - timedelta(days=2), "certificate expired on 2025-05-30 (2 days ago)"),
        (
            19,
            "self-signed certificate in certificate chain",
            NOW + timedelta(days=9),
            "certificate not trusted: self-signed certificate in certificate chain",
        ),
        (
            20,
            "unable to get local issuer certificate",
            NOW + timedelta(days=9),
            "certificate not trusted: unable to get local issuer certificate",
        ),
    ],
)
def test_verify_failure_reason(code: int, message: str, not_after: datetime, reason: str) -> None:
    assert verify_failure_reason(verify_error(code, message), info(not_after), "b.test", NOW) == reason


def test_verify_failure_reason_without_certificate() -> None:
    mismatch = verify_failure_reason(verify_error(62, "Hostname mismatch"), None, "b.test")
    assert mismatch == "certificate is for other names, not b.test"
    expired = verify_failure_reason(verify_error(10, "certificate has expired"), None, "b.test")
    assert expired == "certificate has expired"
