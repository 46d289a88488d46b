"""Small helpers for the end-to-end tests (a real ``salotto serve`` process, raw sockets)."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.irc_client import RawClient
from tests.transport.inprocess import GENEROUS_S, read_until_closed, wait_until

__all__ = ["joined", "read_until_closed", "wait_for_log", "wait_until"]


def wait_for_log(server: RunningServer, text: str, count: int = 1, timeout_s: float = GENEROUS_S) -> list[str]:
    """The server's log lines containing ``text``, once there are at least ``count`` of them."""
    found: list[str] = []

    def logged() -> bool:
        found[:] = [line for line in server.log().splitlines() if text in line]
        return len(found) >= count

    wait_until(logged, timeout_s, f"{count} log line(s) with {text!r}; log tail: {server.log()[-2000:]}")
    return found


def joined(server: RunningServer, nick: str, timeout_s: float = GENEROUS_S) -> RawClient:
    """A client registered as ``nick`` that has finished joining #lobby."""
    client = RawClient(server.host, server.port, timeout_s=timeout_s)
    client.register(nick)
    client.expect("366", p1="#lobby")
    return client
