"""The static half of the egress guard: every spelling of the metadata address is refused."""

from __future__ import annotations

import ipaddress

import pytest

from spectra.api.addresses import TargetError, check_host, check_url, parse_ip

METADATA_SPELLINGS = [
    "169.254.169.254",
    "169.254.169.254.",  # trailing dot
    "2852039166",  # decimal
    "0xA9FEA9FE",  # hex
    "0xa9.0xfe.0xa9.0xfe",  # dotted hex
    "0251.0376.0251.0376",  # octal
    "169.254.43518",  # short form
    "::ffff:169.254.169.254",  # IPv4-mapped
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped, hex, bracketed
    "64:ff9b::a9fe:a9fe",  # NAT64
    "fd00:ec2::254",  # AWS IMDS IPv6
    "fe80::1",  # IPv6 link-local
    "169.254.1.1",  # any link-local
    "2002:a9fe:a9fe::",  # 6to4 carrying 169.254.169.254
    "2002:a9fe:101::1",  # 6to4 carrying link-local 169.254.1.1
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo whose client is 169.254.169.254 (obfuscated)
    "100.100.100.200",  # Alibaba Cloud metadata
    "168.63.129.16",  # Azure WireServer
    "192.0.0.192",  # Oracle Cloud metadata
    "::ffff:100.100.100.200",
    "metadata.google.internal",
    "METADATA.GOOGLE.INTERNAL.",
]


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_host_refused(host: str) -> None:
    with pytest.raises(TargetError, match="metadata"):
        check_host(host)


@pytest.mark.parametrize("host", METADATA_SPELLINGS[:-2])
def test_metadata_url_refused(host: str) -> None:
    literal = f"[{host.strip('[]')}]" if ":" in host else host
    with pytest.raises(TargetError, match="metadata"):
        check_url(f"http://{literal}/latest/meta-data/")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2852039166", "169.254.169.254"),
        ("0x7f000001", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4 carrying loopback
        ("2002:0a00:0001::5", "10.0.0.1"),  # 6to4 carrying a private address
        ("2002:0808:0808::", "8.8.8.8"),
        ("::1", "::1"),
        ("example.com", None),
        ("1.2.3.4 junk", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    parsed = parse_ip(text)
    assert (None if parsed is None else str(parsed)) == expected
    if expected is not None:
        assert parsed == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("gopher://example.com/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("/relative/path", "only http and https"),
        ("https://user@example.com/", "credentials"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "invalid port"),
        ("https://exa mple.com/", "spaces"),
        ("https://exa\nmple.com/", "control"),
        ("https:///nohost", "no host"),
        ("https://bad_host!/", "not a valid host"),
    ],
)
def test_bad_urls(url: str, words: str) -> None:
    with pytest.raises(TargetError, match=words):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://127.0.0.1:8080/x?y=1",
        "http://[::1]:80/",
        "https://10.1.2.3/",
        "HTTPS://Example.COM/",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_url(url) == url
