"""Who a request comes from, for every rate limit (spectra/runtime/clients.py)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from spectra.runtime.clients import client_key, client_of_host


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:DB8:0:0:abcd::1", "2001:db8::/64"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # not ::/64, which every IPv4 client of a dual-stack socket is in
        ("::ffff:203.0.113.10", "203.0.113.10"),
        ("testclient", "testclient"),
        ("", "unknown"),
    ],
)
def test_clients_are_counted_by_address_or_ipv6_prefix(address: str, key: str) -> None:
    request = Request({"type": "http", "client": (address, 1), "headers": []})
    assert client_key(request) == key


def test_an_address_given_as_text_is_counted_the_same_way() -> None:
    assert client_of_host("2001:db8::1") == "2001:db8::/64"
    assert client_of_host("2001:db8::/64") == "2001:db8::/64"  # a key it made comes back unchanged
    assert client_of_host("::ffff:203.0.113.9") == "203.0.113.9"
