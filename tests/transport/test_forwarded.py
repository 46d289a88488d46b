"""The client's address from Forwarded (RFC 7239) and X-Forwarded-For, as a trusted proxy sends them."""

from __future__ import annotations

import pytest

from salotto.server.flood import AddressSet
from salotto.transport.forwarded import (
    ForwardedError,
    Resolved,
    canonical_ip,
    forwarded_for_nodes,
    is_trusted,
    resolve_client,
)

TRUSTED = AddressSet(["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"])


def resolve(**headers: str | list[str]) -> Resolved:
    named = {name.replace("_", "-").lower(): value for name, value in headers.items()}

    def get_all(name: str) -> list[str]:
        value = named.get(name.lower(), [])
        return [value] if isinstance(value, str) else value

    return resolve_client(get_all, TRUSTED)


# -- X-Forwarded-For -------------------------------------------------------------------------------------


def test_x_forwarded_for_one_address() -> None:
    assert resolve(x_forwarded_for="203.0.113.7") == Resolved("203.0.113.7")


def test_x_forwarded_for_takes_the_rightmost_address_that_is_not_a_trusted_proxy() -> None:
    # The client wrote the first two; nginx appended what it saw, then two trusted hops appended theirs.
    assert resolve(x_forwarded_for="1.1.1.1, 2.2.2.2, 203.0.113.7, 10.1.2.3, 127.0.0.1").address == "203.0.113.7"


def test_x_forwarded_for_spoofed_entries_left_of_the_client_do_not_count_even_if_garbage() -> None:
    assert resolve(x_forwarded_for="<script>, not an address,, 203.0.113.7") == Resolved("203.0.113.7")
    assert resolve(x_forwarded_for=["junk;junk", "203.0.113.7"]) == Resolved("203.0.113.7")


def test_x_forwarded_for_all_trusted_gives_the_leftmost() -> None:
    assert resolve(x_forwarded_for="10.9.9.9, 127.0.0.1") == Resolved("10.9.9.9")


def test_x_forwarded_for_ipv6_forms_and_ports() -> None:
    assert resolve(x_forwarded_for="2001:DB8::1").address == "2001:db8::1"
    assert resolve(x_forwarded_for="[2001:db8::1]:4711").address == "2001:db8::1"
    assert resolve(x_forwarded_for="[2001:db8::1]").address == "2001:db8::1"
    assert resolve(x_forwarded_for="203.0.113.7:4711").address == "203.0.113.7"
    assert resolve(x_forwarded_for="::ffff:203.0.113.7").address == "203.0.113.7"
    assert resolve(x_forwarded_for="203.0.113.7, 2001:db8:ffff::5").address == "203.0.113.7"


@pytest.mark.parametrize("value", [
    "", " ", "not-an-ip", "203.0.113.7, garbage", "203.0.113.7, 256.1.1.1", "1.2.3.4:99999",
    "[2001:db8::1", "2001:db8::1]:80", "fe80::1%eth0", "203.0.113.7, ",
])
def test_x_forwarded_for_malformed_where_a_trusted_proxy_wrote_falls_back_with_a_problem(value: str) -> None:
    resolved = resolve(x_forwarded_for=value)
    assert resolved.address is None and resolved.problem is not None
    assert "X-Forwarded-For" in resolved.problem


def test_x_forwarded_for_unknown_names_no_address() -> None:
    resolved = resolve(x_forwarded_for="unknown")
    assert resolved.address is None and resolved.problem is not None and "names no client address" in resolved.problem


# -- Forwarded -------------------------------------------------------------------------------------------


def test_forwarded_rfc7239_examples() -> None:
    assert forwarded_for_nodes(['for="_gazonk"']) == ["_gazonk"]
    assert forwarded_for_nodes(['For="[2001:db8:cafe::17]:4711"']) == ["[2001:db8:cafe::17]:4711"]
    assert forwarded_for_nodes(["for=192.0.2.60;proto=http;by=203.0.113.43"]) == ["192.0.2.60"]
    assert forwarded_for_nodes(["for=192.0.2.43, for=198.51.100.17"]) == ["192.0.2.43", "198.51.100.17"]
    assert forwarded_for_nodes(["for=192.0.2.43,for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com"]) \
        == ["192.0.2.43", "198.51.100.17"]


def test_forwarded_resolves_like_x_forwarded_for() -> None:
    assert resolve(forwarded='for="[2001:db8:cafe::17]:4711"') == Resolved("2001:db8:cafe::17")
    assert resolve(forwarded="for=192.0.2.60;proto=https;by=127.0.0.1") == Resolved("192.0.2.60")
    assert resolve(forwarded=['for=1.1.1.1, for="203.0.113.7:555"', "for=10.0.0.1"]) == Resolved("203.0.113.7")
    assert resolve(forwarded='for=198.51.100.1;host="a,b;c=\\"d\\"", for=127.0.0.1') == Resolved("198.51.100.1")


def test_forwarded_obfuscated_unknown_or_missing_for_names_no_address() -> None:
    for value in ('for="_hidden"', "for=unknown", "proto=https", "for=192.0.2.1, proto=https"):
        resolved = resolve(forwarded=value)
        assert resolved.address is None and resolved.problem is not None, value


@pytest.mark.parametrize("value", [
    "for=", 'for="192.0.2.1', "for=192.0.2.1:80", "for=[2001:db8::1]", "for 192.0.2.1", "for=1;for=2",
    "for=192.0.2.1 proto=http", 'for="\\', "=192.0.2.1",
])
def test_forwarded_malformed(value: str) -> None:
    resolved = resolve(forwarded=value)
    assert resolved.address is None and resolved.problem is not None
    assert resolved.problem.startswith("malformed Forwarded header")


def test_forwarded_syntax_errors_raise() -> None:
    for value in ('for="192.0.2.1', "for 192.0.2.1", "for=1;for=2", "for=192.0.2.1 proto=http"):
        with pytest.raises(ForwardedError):
            forwarded_for_nodes([value])


# -- both, none ------------------------------------------------------------------------------------------


def test_no_header_is_the_socket_address_without_a_problem() -> None:
    assert resolve() == Resolved(None, None)


def test_both_headers_agreeing_are_believed() -> None:
    assert resolve(forwarded="for=203.0.113.7", x_forwarded_for="203.0.113.7") == Resolved("203.0.113.7")


def test_both_headers_disagreeing_are_not_believed() -> None:
    # nginx appends to X-Forwarded-For and passes on a Forwarded header the client wrote (or the other
    # way round with another proxy): which one the proxy wrote cannot be told, so neither is used.
    resolved = resolve(forwarded="for=198.51.100.66", x_forwarded_for="198.51.100.66, 203.0.113.7")
    assert resolved.address is None and resolved.problem is not None
    assert "198.51.100.66" in resolved.problem and "203.0.113.7" in resolved.problem


def test_a_problem_quotes_the_header_but_not_endlessly() -> None:
    resolved = resolve(x_forwarded_for="x" * 5000)
    assert resolved.problem is not None and len(resolved.problem) < 400


# -- helpers ---------------------------------------------------------------------------------------------


def test_canonical_ip() -> None:
    assert canonical_ip("2001:DB8:0::1") == "2001:db8::1"
    assert canonical_ip("::ffff:10.0.0.1") == "10.0.0.1"
    assert canonical_ip("010.0.0.1") is None
    assert canonical_ip("fe80::1%lo") is None
    assert canonical_ip("example.org") is None


def test_is_trusted_knows_ipv4_mapped_socket_addresses() -> None:
    assert is_trusted("127.0.0.1", TRUSTED)
    assert is_trusted("::ffff:127.0.0.1", TRUSTED)
    assert is_trusted("::FFFF:10.2.3.4", TRUSTED)
    assert is_trusted("2001:db8:ffff:1::1", TRUSTED)
    assert not is_trusted("127.0.0.2", TRUSTED)
    assert not is_trusted("::ffff:127.0.0.2", TRUSTED)
    assert not is_trusted("unix", TRUSTED)
