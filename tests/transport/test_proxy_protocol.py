"""The PROXY protocol header parser (versions 1 and 2), bytes in, header out: no sockets."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from salotto.transport.proxy_protocol import (
    V1_MAX_BYTES,
    V2_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
)


def parse(data: bytes) -> ProxyHeader | None:
    return ProxyHeaderParser().feed(data)


def v2(command: int = 1, family: int = 0x11, block: bytes | None = None, *, version: int = 2,
       length: int | None = None) -> bytes:
    """A version 2 header; ``block`` defaults to 192.0.2.7:4711 -> 198.51.100.1:6667."""
    if block is None:
        block = (ipaddress.IPv4Address("192.0.2.7").packed + ipaddress.IPv4Address("198.51.100.1").packed
                 + struct.pack("!HH", 4711, 6667))
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes(((version << 4) | command, family)) + struct.pack("!H", size) + block


def v2_inet6(source: str, tlvs: bytes = b"") -> bytes:
    block = (ipaddress.IPv6Address(source).packed + ipaddress.IPv6Address("2001:db8::99").packed
             + struct.pack("!HH", 50000, 6667) + tlvs)
    return v2(family=0x21, block=block)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes((kind,)) + struct.pack("!H", len(value)) + value


# -- version 1 ------------------------------------------------------------------------------------------


def test_v1_tcp4_gives_the_source_address_and_port() -> None:
    assert parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\r\n") == ProxyHeader(1, "192.0.2.7", 4711, b"")


def test_v1_tcp6_canonical_and_ipv4_mapped_addresses() -> None:
    header = parse(b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 4711 6667\r\n")
    assert header is not None and header.source == "2001:db8::1"
    header = parse(b"PROXY TCP6 ::ffff:192.0.2.9 ::ffff:192.0.2.1 4711 6667\r\n")
    assert header is not None and header.source == "192.0.2.9"


def test_v1_unknown_means_use_the_connection_address_and_ignores_the_rest_of_the_line() -> None:
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, None, None, b"")
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n") == ProxyHeader(1, None, None, b"")


def test_v1_longest_valid_line_is_107_bytes() -> None:
    v6 = ":".join(["ffff"] * 8)
    line = f"PROXY UNKNOWN {v6} {v6} 65535 65535\r\n".encode()
    assert len(line) == V1_MAX_BYTES == 107
    assert parse(line) == ProxyHeader(1, None, None, b"")
    line = f"PROXY TCP6 {v6} {v6} 65535 65535\r\n".encode()
    assert parse(line) is not None


def test_v1_data_after_the_header_in_the_same_read_is_returned() -> None:
    header = parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\r\nNICK alice\r\nUSER a 0 * :A\r\n")
    assert header is not None and header.rest == b"NICK alice\r\nUSER a 0 * :A\r\n"


def test_v1_split_over_many_reads_byte_by_byte() -> None:
    data = b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\r\nNICK a"
    parser = ProxyHeaderParser()
    for i in range(data.index(b"\n")):
        assert parser.feed(data[i:i + 1]) is None
    assert parser.feed(data[data.index(b"\n"):]) == ProxyHeader(1, "192.0.2.7", 4711, b"NICK a")


def test_v1_split_with_the_crlf_itself_split() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\r") is None
    assert parser.feed(b"\nPING x\r\n") == ProxyHeader(1, "192.0.2.7", 4711, b"PING x\r\n")


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\n",          # LF alone
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667\rX\n",       # CR alone
    b"PROXY TCP4 192.0.2.7  198.51.100.1 4711 6667\r\n",       # two spaces
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4711\r\n",             # a field missing
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 6667 7\r\n",      # one too many
    b"PROXY TCP5 192.0.2.7 198.51.100.1 4711 6667\r\n",        # unknown protocol
    b"PROXY tcp4 192.0.2.7 198.51.100.1 4711 6667\r\n",        # case matters
    b"PROXY TCP4 192.0.2.07 198.51.100.1 4711 6667\r\n",       # leading zero (octal?)
    b"PROXY TCP4 192.0.2.256 198.51.100.1 4711 6667\r\n",
    b"PROXY TCP4 2001:db8::1 198.51.100.1 4711 6667\r\n",      # family mismatch
    b"PROXY TCP6 192.0.2.7 2001:db8::2 4711 6667\r\n",
    b"PROXY TCP6 fe80::1%eth0 2001:db8::2 4711 6667\r\n",      # zone index
    b"PROXY TCP4 192.0.2.7 198.51.100.1 04711 6667\r\n",       # leading zero in a port
    b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 6667\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 6667\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 \xd9\xa1 6667\r\n",    # a non-ASCII digit
    b"PROXY\r\n",
    b"PROXY \r\n",
])
def test_v1_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(line)


def test_v1_without_crlf_in_107_bytes_is_refused_and_not_buffered_further() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY UNKNOWN " + b"x" * 90) is None
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        parser.feed(b"x" * 10)
    with pytest.raises(ProxyHeaderError):
        parse(b"PROXY UNKNOWN " + b"x" * 100_000 + b"\r\n")


# -- version 2 ------------------------------------------------------------------------------------------


def test_v2_tcp4() -> None:
    assert parse(v2()) == ProxyHeader(2, "192.0.2.7", 4711, b"")


def test_v2_tcp6_and_mapped() -> None:
    assert parse(v2_inet6("2001:db8::1")) == ProxyHeader(2, "2001:db8::1", 50000, b"")
    header = parse(v2_inet6("::ffff:192.0.2.9"))
    assert header is not None and header.source == "192.0.2.9"


def test_v2_local_means_the_connection_address_whatever_the_block_says() -> None:
    assert parse(v2(command=0, family=0x00, block=b"")) == ProxyHeader(2, None, None, b"")
    assert parse(v2(command=0)) == ProxyHeader(2, None, None, b"")
    assert parse(v2(command=0, family=0x11, block=b"")) == ProxyHeader(2, None, None, b"")


def test_v2_unspec_and_unix_families_mean_the_connection_address() -> None:
    assert parse(v2(family=0x00, block=b"")) == ProxyHeader(2, None, None, b"")
    assert parse(v2(family=0x31, block=b"/run/a".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0"))) == \
        ProxyHeader(2, None, None, b"")


def test_v2_tlvs_are_skipped() -> None:
    tlvs = tlv(0x01, b"irc") + tlv(0x02, b"chat.example.org") + tlv(0x04, b"\0" * 5) + tlv(0x05, b"")
    header = parse(v2_inet6("2001:db8::1", tlvs) + b"NICK a\r\n")
    assert header == ProxyHeader(2, "2001:db8::1", 50000, b"NICK a\r\n")


def test_v2_data_after_the_header_and_a_split_over_reads() -> None:
    data = v2() + b"CAP LS 302\r\nNICK alice\r\n"
    for cut in (1, 5, 12, 13, 15, 16, 20, len(v2()) - 1):
        parser = ProxyHeaderParser()
        assert parser.feed(data[:cut]) is None, cut
        assert parser.feed(data[cut:]) == ProxyHeader(2, "192.0.2.7", 4711, b"CAP LS 302\r\nNICK alice\r\n"), cut
    parser = ProxyHeaderParser()
    results = [parser.feed(data[i:i + 1]) for i in range(len(v2()))]
    assert results[:-1] == [None] * (len(v2()) - 1)
    assert results[-1] == ProxyHeader(2, "192.0.2.7", 4711, b"")


@pytest.mark.parametrize(("data", "why"), [
    (v2(version=1), "version 1"),
    (v2(version=3), "version 3"),
    (v2(command=2), "command"),
    (v2(command=0xF), "command"),
    (v2(family=0x13), "family"),
    (v2(family=0x41), "family"),
    (v2(family=0x10), "family"),
    (v2(family=0x11, block=b"\0" * 8), "address block"),
    (v2(family=0x21, block=b"\0" * 12), "address block"),
    (v2(family=0x11, block=b"\0" * 12 + b"\x01\x00"), "TLV cut short"),
    (v2(family=0x11, block=b"\0" * 12 + tlv(1, b"abc")[:-1]), "TLV longer"),
])
def test_v2_malformed_headers_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why):
        parse(data)


def test_v2_oversized_header_is_refused_before_it_is_read() -> None:
    parser = ProxyHeaderParser()
    header = v2(block=b"", length=V2_MAX_BYTES)  # announces 16 + 4096 bytes
    with pytest.raises(ProxyHeaderError, match="more than 4096"):
        parser.feed(header[:16])
    largest = v2(block=b"\0" * 12 + tlv(0x04, b"\0" * (V2_MAX_BYTES - 16 - 12 - 3)))
    assert len(largest) == V2_MAX_BYTES
    assert parse(largest) == ProxyHeader(2, "0.0.0.0", 0, b"")


def test_v2_truncated_header_waits_and_never_completes() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(v2()[:-1]) is None
    assert parser.feed(b"") is None


# -- neither -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"NICK alice\r\n",
    b"CAP LS 302\r\n",
    b"GET / HTTP/1.1\r\n",
    b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
    b"PROXX TCP4",
    b"\r\n\r\n\x00\r\nQUIX\n",
    b"\r\nNICK a\r\n",
    b"\x00",
])
def test_anything_else_is_refused_as_soon_as_it_can_be_told(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)


def test_first_byte_of_something_else_is_enough() -> None:
    with pytest.raises(ProxyHeaderError, match="not a PROXY protocol header"):
        parse(b"N")


def test_nothing_yet_is_not_an_error() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"") is None
    assert parser.feed(b"PRO") is None
    assert parser.feed(b"XY TCP4 192.0.2.7 198.51.100.1 1 2\r\n") == ProxyHeader(1, "192.0.2.7", 1, b"")
