"""Accounts for interop tests: register one from a raw socket, ask WHOIS who is logged in as what."""

from __future__ import annotations

import uuid
from typing import Protocol

from tests.conftest import RunningServer
from tests.irc_client import RawClient

PASSWORD = "interop-sasl-password"


class HasClients(Protocol):
    """A server a test started (a subprocess or in this process): it hands out raw clients."""

    def client(self) -> RawClient: ...


def register_account(server: HasClients, name: str, password: str = PASSWORD) -> None:
    """Register the account ``name`` (password :data:`PASSWORD` unless given) and disconnect."""
    client = server.client()
    client.register(name)
    client.send(f"REGISTER * * :{password}")
    client.expect("REGISTER", p0="SUCCESS")
    client.send("QUIT")
    client.close()


def logged_in_as(server: RunningServer, nick: str) -> str | None:
    """The account WHOIS (330) shows for ``nick``, asked by a fresh raw client."""
    peer = server.client()
    peer.register(f"who{uuid.uuid4().hex[:6]}")
    peer.send(f"WHOIS {nick}")
    replies = peer.lines_until("318")
    peer.close()
    return next((m.params[2] for m in replies if m.command == "330"), None)
