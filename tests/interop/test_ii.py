"""ii (suckless "irc it", Debian package ``ii``), unchanged, against a real salotto server.

ii is driven through its filesystem interface: every channel and query is a directory with an ``in``
FIFO to write to and an ``out`` file to read.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.interop.conftest import LOBBY
from tests.interop.processes import require_binary, stop_process
from tests.interop.waiting import expect_from, read_text, wait_until, write_fifo
from tests.irc_client import RawClient

NICK = "iiuser"
PEER = "rawpeer"


@dataclass
class Ii:
    process: subprocess.Popen[bytes]
    server_dir: Path  # <irc dir>/<host>: ii's files for this server

    def out(self, target: str) -> Path:
        return self.server_dir / target / "out"

    def fifo(self, target: str) -> Path:
        return self.server_dir / target / "in"

    def wait_for_line(self, target: str, pattern: str) -> None:
        """Wait until ``target``'s out file has a line matching ``pattern`` (after ii's timestamp)."""
        regex = re.compile(rf"^\d+ {pattern}$", re.MULTILINE)
        path = self.out(target)
        wait_until(lambda: regex.search(read_text(path)) is not None, f"{pattern!r} in {path}",
                   describe=lambda: read_text(path))


@pytest.fixture
def ii(salotto_server: RunningServer, tmp_path: Path) -> Iterator[Ii]:
    binary = require_binary("ii", "ii")
    irc_dir = tmp_path / "ii"
    with (tmp_path / "ii.log").open("wb") as output:
        process = subprocess.Popen(
            [binary, "-s", salotto_server.host, "-p", str(salotto_server.port), "-i", str(irc_dir),
             "-n", NICK, "-f", "ii interop"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        yield Ii(process, irc_dir / salotto_server.host)
    finally:
        stop_process(process)


def wait_in_lobby(ii: Ii) -> None:
    ii.wait_for_line(LOBBY, rf"-!- {NICK}\(~{NICK}@[^)]*\) has joined {LOBBY}")


def test_sits_in_lobby_and_talks_both_ways(ii: Ii, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(ii)
    peer = raw_peer(PEER)
    ii.wait_for_line(LOBBY, rf"-!- {PEER}\(~{PEER}@[^)]*\) has joined {LOBBY}")

    write_fifo(ii.fifo(LOBBY), "hello from ii\n")
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from ii")

    peer.send(f"PRIVMSG {LOBBY} :hello back, ii")
    ii.wait_for_line(LOBBY, rf"<{PEER}> hello back, ii")


def test_private_messages_both_ways(ii: Ii, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(ii)
    peer = raw_peer(PEER)

    peer.send(f"PRIVMSG {NICK} :psst, ii")
    ii.wait_for_line(PEER, rf"<{PEER}> psst, ii")

    # ii opened a query directory for the peer; answering through its FIFO is how an ii user replies.
    write_fifo(ii.fifo(PEER), "psst yourself\n")
    expect_from(peer, "PRIVMSG", NICK, p0=PEER, p1="psst yourself")
