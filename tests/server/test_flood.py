"""ip_key: the address a per-address limit counts by."""

from __future__ import annotations

import pytest

from salotto.server.flood import ip_key


@pytest.mark.parametrize(("ip", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::7", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    # An IPv4 client of a dual-stack socket: its own address, not the /64 every IPv4 client is in.
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("::FFFF:192.0.2.8", "192.0.2.8"),
    ("::ffff:c000:209", "192.0.2.9"),
    ("::1", "::/64"),
    ("unix", "unix"),
])
def test_ip_key(ip: str, key: str) -> None:
    assert ip_key(ip) == key


def test_ipv4_mapped_addresses_are_not_one_bucket() -> None:
    assert len({ip_key(f"::ffff:198.51.100.{i}") for i in range(1, 50)}) == 49
