"""Fixtures for interop tests: a raw-socket peer sitting in #lobby next to the client under test.

Every test with a raw peer runs twice: on one server, and on a cluster of two nodes (Redis, PostgreSQL)
with the client under test on one node and its peer on the other, so that each client's chat works
unchanged across nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import start_cluster, stop_cluster
from tests.conftest import RunningServer, start_server, stop_server
from tests.irc_client import RawClient

LOBBY = "#lobby"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "raw_peer" in metafunc.fixturenames:
        metafunc.parametrize("layout", ["one server", "two nodes"])


@pytest.fixture
def layout() -> str:
    return "one server"


@pytest.fixture
def servers(layout: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[RunningServer]]:
    """The server, or the two nodes of a cluster: the client under test connects to the first, its raw peer
    to the last."""
    if layout == "one server":
        server = start_server(tmp_path)
        yield [server]
        stop_server(server)
        return
    redis_url = request.getfixturevalue("redis_server").url
    nodes = start_cluster(tmp_path, 2, redis_url, request.getfixturevalue("postgres_url"))
    yield list(nodes)
    stop_cluster(nodes)


@pytest.fixture
def salotto_server(servers: list[RunningServer]) -> RunningServer:
    return servers[0]


@pytest.fixture
def raw_peer(servers: list[RunningServer]) -> Iterator[Callable[[str], RawClient]]:
    """Make registered raw clients (already auto-joined to #lobby); all are closed at teardown."""
    peers: list[RawClient] = []

    def make(nick: str) -> RawClient:
        peer = servers[-1].client()
        peers.append(peer)
        peer.register(nick)
        peer.expect("JOIN", p0=LOBBY)
        return peer

    yield make
    for peer in peers:
        peer.close()
