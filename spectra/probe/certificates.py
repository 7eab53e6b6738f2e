"""Facts about a served certificate (days left, expiry, subject, issuer, names), shared by tls, tcp and http.

Checks hand over the DER bytes from `SSLObject.getpeercert(binary_form=True)`: that form is there even
when verification was off, so a certificate that fails verification still reports its expiry.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

# OpenSSL verify codes we explain in our own words (X509_V_ERR_*).
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
# X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the chain was trusted, the name is wrong.
NAME_MISMATCH_CODES = frozenset({62, 64})


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    common_name: str | None
    issuer: str
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial: str

    def days_left(self, now: datetime | None = None) -> int:
        """Days until expiry, rounded to the nearest day (negative once expired).

        Rounded rather than floored: certificates carry whole seconds, so one issued "for 5 days" has
        4.99999 days left a moment later, and people expect to read 5.
        """
        seconds = (self.not_after - (now or datetime.now(UTC))).total_seconds()
        return math.floor(seconds / 86400 + 0.5)

    def expired(self, now: datetime | None = None) -> bool:
        return self.not_after <= (now or datetime.now(UTC))

    def not_yet_valid(self, now: datetime | None = None) -> bool:
        return self.not_before > (now or datetime.now(UTC))

    @property
    def names(self) -> tuple[str, ...]:
        """Names to show people: the SANs, or the common name when there are none (matching ignores it)."""
        names = self.dns_names + self.ip_addresses
        if not names and self.common_name:
            return (self.common_name,)
        return names

    def matches(self, hostname: str) -> bool:
        """RFC 6125 matching: exact names, a wildcard in the left-most label only, IP SANs for IP literals."""
        host = hostname.strip("[]").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            return any(ipaddress.ip_address(ip) == address for ip in self.ip_addresses)
        # No common-name fallback: Python's ssl (like browsers) matches SANs only, and so do we.
        return any(_name_matches(pattern.lower().rstrip("."), host) for pattern in self.dns_names)

    def facts(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready facts; http uses the same keys for days left and expiry."""
        return {
            "certificate_days_left": self.days_left(now),
            "certificate_expires_at": self.not_after.isoformat(),
            "certificate_not_before": self.not_before.isoformat(),
            "certificate_subject": self.subject,
            "certificate_issuer": self.issuer,
            "certificate_sans": list(self.dns_names + self.ip_addresses),
            "certificate_serial": self.serial,
        }


def _name_matches(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    # `*.example.com` covers `a.example.com`, never `example.com` or `a.b.example.com`.
    label, _, rest = host.partition(".")
    return bool(label) and rest == pattern[2:] and "." in rest


def parse_der(der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    dns_names: list[str] = []
    ip_addresses: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns_names = [str(name) for name in san.get_values_for_type(x509.DNSName)]
        ip_addresses = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = common_names[0].value if common_names else None
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        common_name=common_name if isinstance(common_name, str) else None,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ip_addresses),
        serial=format(cert.serial_number, "x"),
    )


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> CertificateInfo | None:
    """The leaf certificate of an established TLS connection, or None (no TLS, or nothing sent)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return parse_der(der) if der else None


def verify_failure_reason(
    error: ssl.SSLCertVerificationError, cert: CertificateInfo | None, hostname: str, now: datetime | None = None
) -> str:
    """One line saying why a certificate was not accepted, in words people know."""
    code = getattr(error, "verify_code", None)
    message = str(getattr(error, "verify_message", "") or error.reason or error)
    # OpenSSL reports the first problem it meets; we keep its verdict and only put it in plainer words.
    if code in NAME_MISMATCH_CODES:
        names = ", ".join(cert.names[:5]) if cert is not None and cert.names else "other names"
        return f"certificate is for {names}, not {hostname}"
    if code == _CERT_HAS_EXPIRED or (cert is not None and cert.expired(now)):
        if cert is None:
            return "certificate has expired"
        days = -cert.days_left(now)
        ago = "today" if days <= 0 else f"{days} day{'s' if days != 1 else ''} ago"
        return f"certificate expired on {cert.not_after:%Y-%m-%d} ({ago})"
    if code == _CERT_NOT_YET_VALID and cert is not None:
        return f"certificate is not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC"
    return f"certificate not trusted: {message}"


def expiry_reason(days_left: int) -> str:
    if days_left < 0:
        return f"certificate expired {-days_left} day{'s' if days_left != -1 else ''} ago"
    return f"certificate expires in {days_left} day{'s' if days_left != 1 else ''}"
