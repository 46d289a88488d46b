"""Waiting without sleeping: poll a condition, or wait on events that another thread records.

Interop tests drive software we don't control (libraries on their own threads, terminal clients in
their own processes), so every wait has a deadline and every failure says what was last seen.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salotto.proto import Message
from tests.irc_client import RawClient

__all__ = ["POLL_INTERVAL_S", "WAIT_S", "Inbox", "expect_from", "read_text", "wait_until", "write_fifo"]

# Generous for a loaded CI machine, yet short enough that one test stays well under 15 s.
WAIT_S = 8.0
# Terminal clients write their logs within milliseconds; polling faster only burns CPU.
POLL_INTERVAL_S = 0.05

Event = tuple[Any, ...]


class Inbox:
    """Events recorded by a client running on another thread, with a blocking ``wait_for``."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def add(self, *event: Any) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def events(self) -> list[Event]:
        with self._changed:
            return list(self._events)

    def wait_for(self, predicate: Callable[[Event], bool], what: str, timeout_s: float = WAIT_S) -> Event:
        """Return the first recorded event matching ``predicate``; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} within {timeout_s} s; recorded: {self._events[-20:]}")
                self._changed.wait(remaining)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = WAIT_S,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` until it holds; on timeout, fail with ``describe()`` (e.g. the log so far)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s\n{describe()}")
        time.sleep(POLL_INTERVAL_S)


def read_text(path: Path) -> str:
    """The file's text so far, or "" if the client has not created it yet."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def write_fifo(path: Path, text: str, timeout_s: float = WAIT_S) -> None:
    """Write to a FIFO that a client reads, waiting until it exists and has a reader.

    A plain ``open()`` would block forever if the client died; O_NONBLOCK fails with ENXIO instead.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENXIO) or time.monotonic() > deadline:
                raise
            time.sleep(POLL_INTERVAL_S)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def expect_from(raw: RawClient, command: str, nick: str, timeout_s: float = WAIT_S, **match: str) -> Message:
    """Like ``RawClient.expect``, but only a message whose source is ``nick`` counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {command} {match} from {nick} within {timeout_s} s")
        msg = raw.expect(command, timeout_s=remaining, **match)
        if msg.source is not None and msg.source.split("!", 1)[0] == nick:
            return msg
