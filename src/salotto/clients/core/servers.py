"""Server addresses as a user types them: ``host``, ``host:port``, ``[v6addr]:port``, and lists of them.

A list (``a.example.org:6667,b.example.org:6667``) names the servers of one network, a cluster's nodes:
the client connects to the first and moves to the next when its connection goes.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PLAIN_PORT", "TLS_PORT", "Server", "ServerListError", "format_servers", "parse_server", "parse_servers"]

PLAIN_PORT = 6667
TLS_PORT = 6697
# Entries a list may have: a network's nodes, not an address book.
MAX_SERVERS = 32


class Server(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class ServerListError(ValueError):
    """A server list the client cannot use; the message names the entry and says what is wrong."""


def parse_server(text: str, default_port: int = PLAIN_PORT) -> Server:
    """One entry: ``host``, ``host:port`` or ``[v6addr]:port`` (a bare IPv6 address takes the default port).

    Raises:
        ServerListError: no host, a host with spaces, or a port that is not a number from 1 to 65535.
    """
    entry = text.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise ServerListError(f"{entry!r}: an IPv6 address in [ ] needs its closing ]")
        if rest and not rest.startswith(":"):
            raise ServerListError(f"{entry!r}: after [address] only :PORT may follow")
        port_text, has_port = rest.removeprefix(":"), bool(rest)
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        has_port = True
    else:
        host, port_text, has_port = entry, "", False
    if not host:
        raise ServerListError(f"{entry!r}: the server's name or address is missing")
    if any(ch.isspace() for ch in host):
        raise ServerListError(f"{entry!r}: a server's name has no spaces (separate servers with commas)")
    if not has_port:
        return Server(host, default_port)
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ServerListError(f"{entry!r}: the port must be a number from 1 to 65535, not {port_text!r}")
    return Server(host, int(port_text))


def parse_servers(text: str, default_port: int = PLAIN_PORT) -> tuple[Server, ...]:
    """A comma-separated list of entries (see :func:`parse_server`), in order; at least one.

    Raises:
        ServerListError: the list is empty, an entry is empty or bad (the message names it), or there are
            more than :data:`MAX_SERVERS`.
    """
    if not text.strip():
        raise ServerListError("no server given")
    entries = text.split(",")
    if len(entries) > MAX_SERVERS:
        raise ServerListError(f"{len(entries)} servers given; at most {MAX_SERVERS}")
    servers = []
    for number, entry in enumerate(entries, start=1):
        if not entry.strip():
            raise ServerListError(f"server {number} of {len(entries)} in {text.strip()!r} is empty")
        servers.append(parse_server(entry, default_port))
    return tuple(servers)


def format_servers(servers: tuple[Server, ...] | list[Server]) -> str:
    """The list as :func:`parse_servers` reads it back."""
    return ",".join(str(server) for server in servers)
