"""The PROXY protocol header, versions 1 (text) and 2 (binary), as HAProxy's specification defines it
(``proxy-protocol.txt``, shipped with haproxy): a proxy writes it before anything else on the connection
it opens to us, naming the client it relays.

Sans-I/O: :class:`ProxyHeaderParser` is fed the connection's first bytes, read by read, and returns the
header once it is complete, with the bytes that followed it in the same read (the client's first
data). Anything that is not a valid header raises :class:`ProxyHeaderError` as soon as it can be told:
the first byte of ``NICK`` already. A header is never buffered past :data:`V1_MAX_BYTES` (version 1) or
:data:`V2_MAX_BYTES` (version 2).

Who may send a header is not decided here: only a listener that expects one parses it, and only from a
trusted proxy (anyone else could claim any address).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = [
    "V1_MAX_BYTES", "V2_MAX_BYTES", "V2_SIGNATURE", "ProxyHeader", "ProxyHeaderError", "ProxyHeaderParser",
]

V1_PREFIX: Final = b"PROXY "
# "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", the longest line the spec allows.
V1_MAX_BYTES: Final = 107
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED: Final = 16  # signature, version and command, family and transport, length
# A version 2 header may announce up to 64 KiB of TLVs; proxies send a few dozen bytes (an address
# block, perhaps ALPN, an authority, a unique id, TLS details). More than this is refused.
V2_MAX_BYTES: Final = 4096
_V2_LOCAL, _V2_PROXY = 0x0, 0x1
# Family and transport bytes the spec allows (UNSPEC, then TCP and UDP over IPv4 and IPv6, then UNIX).
_V2_FAMILIES: Final = frozenset((0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32))
_V2_INET, _V2_INET6 = 0x1, 0x2
_V2_ADDRESS_BYTES: Final = {_V2_INET: 12, _V2_INET6: 36}


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header; the message says what is wrong, for the log."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header.

    ``source`` is the client's address (canonical; IPv4-mapped IPv6 as IPv4), or None when the header
    says to use the connection's own addresses: version 1 ``UNKNOWN``, version 2 ``LOCAL`` (the proxy's
    health checks) and the families without an IP address (UNSPEC, UNIX). ``rest`` is what followed the
    header in the bytes fed so far.
    """

    version: int
    source: str | None
    source_port: int | None
    rest: bytes


class ProxyHeaderParser:
    """Feed it the connection's bytes until it returns a :class:`ProxyHeader`; then it is done."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        """The header once complete, else None (feed more).

        Raises:
            ProxyHeaderError: the bytes so far cannot start a valid header, or make an invalid one.
        """
        buffer = self._buffer + data if self._buffer else data
        if buffer[:1] == b"P":
            header = _parse_v1(buffer)
        elif buffer[:1] == b"\r":
            header = _parse_v2(buffer)
        elif not buffer:
            return None
        else:
            raise ProxyHeaderError(f"not a PROXY protocol header: starts with {bytes(buffer[:16])!r}")
        self._buffer = buffer if header is None else b""
        return header


def _parse_v1(buffer: bytes) -> ProxyHeader | None:
    prefix = buffer[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(prefix):
        raise ProxyHeaderError(f"not a PROXY protocol header: starts with {bytes(buffer[:16])!r}")
    window = buffer[:V1_MAX_BYTES]
    lf = window.find(b"\n")
    cr = window.find(b"\r")
    if lf == -1:
        if cr != -1 and cr + 1 < len(window):
            raise ProxyHeaderError("version 1 line has a CR without LF")
        if len(buffer) >= V1_MAX_BYTES:
            raise ProxyHeaderError(f"version 1 line longer than {V1_MAX_BYTES} bytes")
        return None
    if cr != lf - 1:
        raise ProxyHeaderError("version 1 line does not end with CRLF")
    try:
        line = window[:cr].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("version 1 line is not ASCII") from None
    rest = bytes(buffer[lf + 1:])
    parts = line.split(" ")
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyHeaderError(f"bad version 1 line {line!r}")
    if parts[1] == "UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, None, None, rest)
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyHeaderError(f"bad version 1 line {line!r}")
    family = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    source_port = _v1_port(parts[4], line)
    _v1_port(parts[5], line)
    source = _v1_address(family, parts[2], line)
    _v1_address(family, parts[3], line)
    return ProxyHeader(1, source, source_port, rest)


def _v1_address(family: type[ipaddress.IPv4Address | ipaddress.IPv6Address], text: str, line: str) -> str:
    try:
        if "%" in text:
            raise ValueError(text)
        return _canonical(family(text))  # IPv4Address refuses leading zeros, as the spec does
    except ValueError:
        raise ProxyHeaderError(f"bad address {text!r} in version 1 line {line!r}") from None


def _v1_port(text: str, line: str) -> int:
    if not (text.isdigit() and text.isascii()) or (text[0] == "0" and text != "0") or int(text) > 65535:
        raise ProxyHeaderError(f"bad port {text!r} in version 1 line {line!r}")
    return int(text)


def _canonical(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _parse_v2(buffer: bytes) -> ProxyHeader | None:
    if not buffer.startswith(V2_SIGNATURE):
        if V2_SIGNATURE.startswith(buffer):
            return None
        raise ProxyHeaderError(f"not a PROXY protocol header: starts with {bytes(buffer[:16])!r}")
    if len(buffer) < _V2_FIXED:
        return None
    version, command = buffer[12] >> 4, buffer[12] & 0xF
    if version != 2:
        raise ProxyHeaderError(f"version 2 signature with version {version}")
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError(f"unknown version 2 command {command:#x}")
    family = buffer[13]
    if family not in _V2_FAMILIES:
        raise ProxyHeaderError(f"unknown version 2 address family and transport {family:#04x}")
    total = _V2_FIXED + int.from_bytes(buffer[14:16], "big")
    if total > V2_MAX_BYTES:
        raise ProxyHeaderError(f"version 2 header of {total} bytes, more than {V2_MAX_BYTES}")
    if len(buffer) < total:
        return None
    block = buffer[_V2_FIXED:total]
    rest = bytes(buffer[total:])
    if command == _V2_LOCAL:  # the proxy's own connection (a health check): the block is ignored
        return ProxyHeader(2, None, None, rest)
    address_bytes = _V2_ADDRESS_BYTES.get(family >> 4, 216 if family >> 4 == 3 else 0)
    if len(block) < address_bytes:
        raise ProxyHeaderError(f"version 2 address block of {len(block)} bytes, {address_bytes} needed")
    _check_tlvs(block[address_bytes:])
    if family >> 4 not in _V2_ADDRESS_BYTES:  # UNSPEC, UNIX: no IP address to take
        return ProxyHeader(2, None, None, rest)
    if family >> 4 == _V2_INET:
        source = _canonical(ipaddress.IPv4Address(block[0:4]))
        port = int.from_bytes(block[8:10], "big")
    else:
        source = _canonical(ipaddress.IPv6Address(block[0:16]))
        port = int.from_bytes(block[32:34], "big")
    return ProxyHeader(2, source, port, rest)


def _check_tlvs(tlvs: bytes) -> None:
    """TLVs are skipped, but they must frame exactly: a stray tail means the header was not made right."""
    i = 0
    while i < len(tlvs):
        if i + 3 > len(tlvs):
            raise ProxyHeaderError("version 2 TLV cut short")
        i += 3 + int.from_bytes(tlvs[i + 1:i + 3], "big")
        if i > len(tlvs):
            raise ProxyHeaderError("version 2 TLV longer than the header")
