"""Accounts for interop tests: register one from a raw socket, ask WHOIS who is logged in as what."""

from __future__ import annotations

import uuid

from tests.conftest import RunningServer

PASSWORD = "interop-sasl-password"


def register_account(server: RunningServer, name: str) -> None:
    """Register the account ``name`` (password :data:`PASSWORD`) and disconnect."""
    client = server.client()
    client.register(name)
    client.send(f"REGISTER * * {PASSWORD}")
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
