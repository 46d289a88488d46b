"""A salotto server inside the test process: the real ``runtime.run`` on an event loop in the main
thread (where it can install its signal handlers), the test body in a worker thread with blocking
sockets. Starting takes milliseconds instead of a Python start-up, and the timer tick can be made
short so timeouts show within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from salotto import runtime
from salotto.config import load_config
from salotto.server.state import Server
from tests.irc_client import RawClient

__all__ = ["GENEROUS_S", "InProcessServer", "read_until_closed", "serve_in_process", "wait_until"]

T = TypeVar("T")

# Waits that normally finish in milliseconds get this much on a loaded machine.
GENEROUS_S = 10.0


def wait_until(condition: Callable[[], bool], timeout_s: float = GENEROUS_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class InProcessServer:
    host: str
    port: int
    server: Server
    records: list[logging.LogRecord] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None  # the server's (call_soon_threadsafe only)

    def client(self, timeout_s: float = GENEROUS_S) -> RawClient:
        return RawClient(self.host, self.port, timeout_s=timeout_s)

    def log_lines(self) -> list[str]:
        return [record.getMessage() for record in list(self.records)]

    def wait_log(self, text: str, timeout_s: float = GENEROUS_S) -> str:
        """The first log line containing ``text``, once it is there."""
        found: list[str] = []

        def logged() -> bool:
            found[:] = [line for line in self.log_lines() if text in line]
            return bool(found)

        wait_until(logged, timeout_s, f"a log line with {text!r}; log: {self.log_lines()[-20:]}")
        return found[0]


def serve_in_process(
    body: Callable[[InProcessServer], T],
    overrides: dict[str, Any] | None = None,
    *,
    config_path: str | None = None,
    tick_s: float = 0.1,
    event_loop: str = "uvloop",
) -> T:
    """Run a server with ``overrides`` (config key -> value), call ``body`` with it, stop the server.

    ``event_loop``: ``uvloop`` (when installed), as ``salotto serve`` runs, or ``asyncio``'s own.

    Fails the test if the event loop saw an unhandled exception or a handler hit an internal error.
    """
    # A data directory of its own: history must not leak from one test into the next.
    overrides = {"listen": ["127.0.0.1:0"], "web_listen": [], "data_dir": tempfile.mkdtemp(prefix="salotto-test-"),
                 **(overrides or {})}
    config = load_config(config_path, overrides)
    records: list[logging.LogRecord] = []
    loop_errors: list[dict[str, Any]] = []
    servers: list[Server] = []
    real_server_class = runtime.Server

    def capture_server(cfg: Any) -> Server:
        servers.append(real_server_class(cfg))
        return servers[-1]

    async def main() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        stop = asyncio.Event()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            task = asyncio.create_task(runtime.run(config, overrides, stop))
            deadline = time.monotonic() + GENEROUS_S
            while (match := re.search(r"listening on ([\d.]+):(\d+)", printed.getvalue())) is None:
                if task.done():
                    task.result()
                if time.monotonic() > deadline:
                    raise AssertionError(f"in-process server did not start: {printed.getvalue()!r}")
                await asyncio.sleep(0.005)
        handle = InProcessServer(match.group(1), int(match.group(2)), servers[0], records, loop)
        try:
            return await asyncio.to_thread(body, handle)
        finally:
            stop.set()
            await asyncio.wait_for(task, GENEROUS_S)

    logger = logging.getLogger("salotto")
    handler = _ListHandler(records)
    old_level, old_tick, old_grace = logger.level, runtime.TICK_INTERVAL_S, runtime.SHUTDOWN_GRACE_S
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    runtime.TICK_INTERVAL_S = tick_s
    runtime.SHUTDOWN_GRACE_S = 0.05  # the e2e SIGTERM test covers the real grace period
    runtime.Server = capture_server  # type: ignore[assignment,misc]
    try:
        result = (_event_loop_runner() if event_loop == "uvloop" else asyncio.run)(main())
    finally:
        runtime.Server = real_server_class  # type: ignore[misc]
        runtime.TICK_INTERVAL_S = old_tick
        runtime.SHUTDOWN_GRACE_S = old_grace
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not loop_errors, f"unhandled exceptions on the event loop: {loop_errors}"
    internal = [r.getMessage() for r in records if r.levelno >= logging.ERROR and "internal error" in r.getMessage()]
    assert not internal, f"internal errors: {internal}"
    assert servers[0].internal_errors == 0
    return result


def _event_loop_runner() -> Callable[[Any], Any]:
    """uvloop when installed, as ``salotto serve`` does, so the tests see the production transports."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run  # type: ignore[no-any-return]


def read_until_closed(client: RawClient, timeout_s: float = GENEROUS_S) -> list[str]:
    """Every line the server sends until it closes the connection (AssertionError if it does not)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            line = client._read_line(deadline)
        except OSError:  # ConnectionError: EOF or reset
            return lines
        if line is None:
            raise AssertionError(f"the server did not close the connection; it sent: {lines[-15:]}")
        lines.append(line)
