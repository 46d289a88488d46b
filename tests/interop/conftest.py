"""Fixtures for interop tests: a raw-socket peer sitting in #lobby next to the client under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import RunningServer
from tests.irc_client import RawClient

LOBBY = "#lobby"


@pytest.fixture
def raw_peer(salotto_server: RunningServer) -> Iterator[Callable[[str], RawClient]]:
    """Make registered raw clients (already auto-joined to #lobby); all are closed at teardown."""
    peers: list[RawClient] = []

    def make(nick: str) -> RawClient:
        peer = salotto_server.client()
        peers.append(peer)
        peer.register(nick)
        peer.expect("JOIN", p0=LOBBY)
        return peer

    yield make
    for peer in peers:
        peer.close()
