"""Throttle (a token bucket per key, with bounded memory) and ip_key (the address a per-address limit
counts by)."""

from __future__ import annotations

import pytest

from salotto.server.flood import _THROTTLE_PRUNE_AT, Throttle, ip_key


def test_a_throttle_without_evict_partial_never_forgets_a_bucket_that_is_not_full() -> None:
    throttle = Throttle(evict_partial=False)
    for _ in range(5):
        throttle.take("victim", 5, 60.0, 0.0)
    assert throttle.take("victim", 5, 60.0, 0.0) > 0
    for i in range(3 * _THROTTLE_PRUNE_AT):
        throttle.take(f"other{i}", 5, 60.0, 0.0)
    assert throttle.take("victim", 5, 60.0, 0.0) > 0
    # Refilled buckets are forgotten as before: it changes nothing, a new bucket starts full.
    throttle.take("late", 5, 60.0, 120.0)
    for i in range(3 * _THROTTLE_PRUNE_AT):
        throttle.take(f"again{i}", 5, 60.0, 120.0)
    assert len(throttle._buckets) < 3 * _THROTTLE_PRUNE_AT + 2


def test_a_per_address_throttle_stays_bounded_under_a_storm_of_fresh_keys() -> None:
    throttle = Throttle()
    for i in range(5 * _THROTTLE_PRUNE_AT):
        throttle.take(f"203.0.113.{i}", 5, 60.0, 0.0)
    assert len(throttle._buckets) <= _THROTTLE_PRUNE_AT


def test_pruning_stays_rare_when_nothing_can_be_forgotten() -> None:
    """Past the mark with only partial buckets, a prune (a walk over every bucket) does not run again at
    each new key, only once they have doubled."""
    throttle = Throttle(evict_partial=False)
    calls = 0
    prune = throttle._prune

    def counting(now: float) -> None:
        nonlocal calls
        calls += 1
        prune(now)

    throttle._prune = counting  # type: ignore[method-assign]
    for i in range(4 * _THROTTLE_PRUNE_AT):
        throttle.take(f"k{i}", 5, 60.0, 0.0)
    assert calls <= 3


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


def test_address_set_matches_addresses_and_ranges_of_both_families() -> None:
    from salotto.server.flood import AddressSet

    addresses = AddressSet(["127.0.0.0/8", "::1/128", "10.1.2.3", "192.168.0.0/16", "2001:db8::/32"])
    inside = ["127.0.0.1", "127.255.3.4", "10.1.2.3", "192.168.5.5", "::1", "2001:db8::5"]
    outside = ["128.0.0.1", "10.1.2.4", "192.169.0.1", "2001:db9::1", "::2", "unix", "1.2.3", "a.b.c.d", ""]
    assert [ip in addresses for ip in inside] == [True] * len(inside)
    assert [ip in addresses for ip in outside] == [False] * len(outside)
    assert "127.0.0.1" not in AddressSet([])
