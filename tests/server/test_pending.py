"""Connections that are not IRC clients yet (TLS handshakes, page loads, WebSocket handshakes): one count
for every transport, per address block (an IPv6 /64) and in all, held to the open-files budget with the
clients. The transports' side is in tests/transport/test_tls_handshakes.py and tests/web/."""

from __future__ import annotations

from salotto.server.pending import PendingConnection
from tests.server.harness import Harness, MemoryConnection


def admitted(result: PendingConnection | str) -> PendingConnection:
    assert isinstance(result, PendingConnection), result
    return result


def test_an_ipv6_host_counts_once_per_64_whatever_address_of_it_connects() -> None:
    server = Harness(max_pending_connections_per_ip=3, max_pending_connections=100).server
    held = [admitted(server.admit_pending(f"2001:db8:1:2::{i:x}")) for i in range(1, 4)]
    refusal = server.admit_pending("2001:db8:1:2:ffff::99")  # another address of the same /64
    assert refusal == "Too many connections from your address (max_pending_connections_per_ip)"
    admitted(server.admit_pending("2001:db8:1:3::1"))  # the next /64 is someone else
    assert server.pending.count("2001:db8:1:2::/64") == 3 and server.pending.total == 4
    assert server.stats.connections_refused == 1
    held[0].release()
    admitted(server.admit_pending("2001:db8:1:2::77"))


def test_the_cap_in_all_and_the_descriptor_budget_count_every_kind_together() -> None:
    harness = Harness(max_pending_connections_per_ip=100, max_pending_connections=3)
    server = harness.server
    held = [admitted(server.admit_pending(f"192.0.2.{i}")) for i in range(3)]
    assert server.admit_pending("192.0.2.50") == (
        "Too many connections waiting to become clients (max_pending_connections)")
    for pending in held:
        pending.release()
    # Two clients and two pending fill a budget of four: the next of either kind is refused.
    server.fd_budget = 4
    harness.connect("198.51.100.1")
    harness.connect("198.51.100.2")
    held = [admitted(server.admit_pending("192.0.2.1")) for _ in range(2)]
    assert server.admit_pending("192.0.2.2") == "Server is full (open-files limit)"
    assert server.stats.descriptor_refusals == 1
    late = MemoryConnection("198.51.100.3")
    assert server.accept(late) is None and late.closed == "Server is full (open-files limit)"
    assert server.stats.descriptor_refusals == 2
    held[0].release()
    assert server.accept(MemoryConnection("198.51.100.3")) is not None


def test_a_release_counts_once_however_many_paths_end_the_connection() -> None:
    server = Harness().server
    pending = admitted(server.admit_pending("2001:db8::1"))
    other = admitted(server.admit_pending("2001:db8::2"))
    pending.release()
    pending.release()  # its handshake failed as its socket was lost: both paths release
    assert pending.released and not other.released
    assert server.pending.total == 1 and server.pending.per_key == {"2001:db8::/64": 1}
    other.release()
    assert server.pending.total == 0 and server.pending.per_key == {}


def test_a_trusted_proxy_is_held_to_the_cap_in_all_only() -> None:
    server = Harness(max_pending_connections_per_ip=1, max_pending_connections=3).server
    for _ in range(3):
        admitted(server.admit_pending("127.0.0.1", per_ip_cap=False))
    assert isinstance(server.admit_pending("127.0.0.1", per_ip_cap=False), str)
