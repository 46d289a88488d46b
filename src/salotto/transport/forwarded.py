"""The client's address as a trusted reverse proxy reports it: ``Forwarded`` (RFC 7239) and ``X-Forwarded-For``.

Sans-I/O: header values in, an address (or a reason there is none) out. Only a connection whose socket
peer is in ``trusted_proxies`` gets here: anyone else's headers are never read, since a client can
write any address it likes into them.

A proxy appends the address it received the request from to what came in, so the list reads
client-supplied entries first, then one entry per proxy hop. The client is the right-most entry that is
not itself a trusted proxy (nginx's ``real_ip_recursive on``): whatever stands left of it was written by
the client or by proxies we do not know, and is not believed. An unparsable entry left of that one is
such client writing and is ignored; one right of it (written by a trusted proxy) makes the header
unusable, and the request is refused (the proxy's own address is never taken for a client's).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from salotto.server.flood import AddressSet

__all__ = [
    "ForwardedError", "Resolved", "canonical_ip", "forwarded_for_nodes", "is_trusted", "resolve_client",
    "x_forwarded_for_nodes",
]


class ForwardedError(ValueError):
    """A forwarding header that does not parse; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a proxied request's headers say: ``address`` (None: they name no client), and ``problem`` when
    the headers were there but could not be used (to be logged)."""

    address: str | None
    problem: str | None = None


def canonical_ip(text: str) -> str | None:
    """``text`` as an IP address in its canonical form (an IPv4-mapped IPv6 address as IPv4), or None."""
    if "%" in text:  # a zone index means nothing on another host
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_trusted(ip: str, trusted: AddressSet) -> bool:
    """Whether ``ip`` (as a socket reports it: maybe IPv4-mapped on a dual-stack listener) is trusted
    (AddressSet matches mapped addresses itself)."""
    return ip in trusted


def _node_address(node: str) -> str | None:
    """A node (``192.0.2.1``, ``192.0.2.1:4711``, ``[2001:db8::1]``, ``[2001:db8::1]:4711`` or a bare IPv6
    address) -> its canonical address; None for ``unknown`` and obfuscated identifiers (``_hidden``).

    Raises:
        ForwardedError: the node is none of these.
    """
    text = node.strip()
    if text.lower() == "unknown" or text.startswith("_"):
        return None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        if not sep or ":" not in host or (port and not (port[0] == ":" and _is_port(port[1:]))):
            raise ForwardedError(f"bad node {_clip(node)}")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(port):
            raise ForwardedError(f"bad node {_clip(node)}")
    else:
        host = text
    address = canonical_ip(host)
    if address is None:
        raise ForwardedError(f"bad node {_clip(node)}")
    return address


def _is_port(text: str) -> bool:
    # RFC 7239 also allows an obfuscated port ("_abc"); it tells us nothing, so it is accepted.
    if text.isdigit() and text.isascii():
        return len(text) <= 5 and int(text) <= 65535
    return text.startswith("_") and len(text) > 1


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def forwarded_for_nodes(values: Sequence[str]) -> list[str | None]:
    """The ``for=`` node of each element of the ``Forwarded`` header lines, in order (None: no ``for=``).

    Raises:
        ForwardedError: not RFC 7239 syntax (a bad token, an unclosed quoted string, a repeated parameter).
    """
    text = ",".join(values)
    nodes: list[str | None] = []
    element: dict[str, str] = {}
    i, end = 0, len(text)
    while True:
        while i < end and text[i] in " \t":
            i += 1
        # One forwarded-pair, or nothing (empty elements and pairs are allowed).
        start = i
        while i < end and text[i] in _TCHAR:
            i += 1
        name = text[start:i].lower()
        if name:
            if i >= end or text[i] != "=":
                raise ForwardedError(f"expected '=' after {_clip(name)}")
            i += 1
            if i < end and text[i] == '"':
                i += 1
                chars = []
                while True:
                    if i >= end:
                        raise ForwardedError("unclosed quoted string")
                    char = text[i]
                    if char == '"':
                        i += 1
                        break
                    if char == "\\":
                        i += 1
                        if i >= end:
                            raise ForwardedError("unclosed quoted string")
                        char = text[i]
                    chars.append(char)
                    i += 1
                value = "".join(chars)
            else:
                start = i
                while i < end and text[i] in _TCHAR:
                    i += 1
                value = text[start:i]
                if not value:
                    raise ForwardedError(f"no value for {_clip(name)}")
            if name in element:
                raise ForwardedError(f"{_clip(name)} twice in one element")
            element[name] = value
        while i < end and text[i] in " \t":
            i += 1
        if i >= end or text[i] == ",":
            if element or i < end:  # an empty last element (a trailing comma) is not a hop
                nodes.append(element.get("for"))
            element = {}
            if i >= end:
                return nodes
            i += 1
        elif text[i] == ";":
            i += 1
        else:
            raise ForwardedError(f"unexpected {text[i]!r}")


def x_forwarded_for_nodes(values: Sequence[str]) -> list[str | None]:
    """The comma-separated entries of the ``X-Forwarded-For`` header lines, in order."""
    return [item.strip() for item in ",".join(values).split(",")]


def _rightmost_untrusted(nodes: list[str | None], trusted: Callable[[str], bool]) -> str | None:
    """The client address in a list of hops (see the module's docstring). None: the nearest hops name no
    address (``unknown``, obfuscated, or no ``for=``).

    Raises:
        ForwardedError: an entry that a trusted proxy wrote does not parse, or there is no entry at all.
    """
    if not any(nodes):
        raise ForwardedError("no address in it")
    leftmost: str | None = None
    for node in reversed(nodes):
        if not node:
            return None
        address = _node_address(node)
        if address is None or not trusted(address):
            return address
        leftmost = address
    return leftmost  # every hop is a trusted proxy: the first one is as far as we can see


def resolve_client(get_all: Callable[[str], list[str]], trusted: AddressSet) -> Resolved:
    """The client's address from a request that came from a trusted proxy (``get_all``: the request's
    headers, by name). No forwarding header: no address, without a problem (a health check, someone on
    the proxy's own host)."""
    results: list[tuple[str, str | None]] = []
    for name, parse in (("Forwarded", forwarded_for_nodes), ("X-Forwarded-For", x_forwarded_for_nodes)):
        values = get_all(name)
        if not values:
            continue
        try:
            address = _rightmost_untrusted(parse(values), lambda ip: ip in trusted)
        except ForwardedError as exc:
            return Resolved(None, f"malformed {name} header ({exc}): {_shown(values)}")
        if address is None:
            return Resolved(None, f"{name} names no client address: {_shown(values)}")
        results.append((name, address))
    if not results:
        return Resolved(None)
    if len(results) == 2 and results[0][1] != results[1][1]:
        # The proxy wrote one of them and passed the other on from the client; we cannot tell which.
        return Resolved(None, f"Forwarded names {results[0][1]} but X-Forwarded-For {results[1][1]}")
    return Resolved(results[-1][1])


def _shown(values: Sequence[str]) -> str:
    return _clip(", ".join(values), 200)


def _clip(text: str, limit: int = 60) -> str:
    """``text`` quoted for a log line, at most about ``limit`` characters of it."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
