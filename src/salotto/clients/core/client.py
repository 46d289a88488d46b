"""The client: a :class:`Session` driven by a :class:`Connection`, with reconnects and keepalive.

All session state lives in the thread that calls :meth:`Client.pump` (the Tk main loop, a test, a
script); the connection's threads only put events on one queue. ``pump`` drains it, feeds the session,
sends what the session queued and returns what changed.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence

from salotto.clients.core.connection import Closed, Connected, Connection, Event, Received
from salotto.clients.core.model import SERVER_KEY, Change, ChangeKind, LineKind
from salotto.clients.core.session import Session, SessionConfig

__all__ = ["RECONNECT_DELAYS_S", "Client"]

# Waits between reconnect attempts; the last one repeats. HexChat waits 10 s flat; we start faster
# because a restarting salotto is usually back within a second or two.
RECONNECT_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# Silence after which we PING the server, and after which we call the connection dead.
PING_INTERVAL_S = 90.0
PING_TIMEOUT_S = 240.0


class Client:
    """Connect to ``host:port`` as ``config.nick``; call :meth:`pump` often (every 50 ms is plenty).

    Exactly one party should pump (a GUI, or a script through :meth:`wait_until`): the changes
    :meth:`pump` returns are handed out once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        config: SessionConfig,
        *,
        tls: bool = False,
        tls_verify: bool = True,
        reconnect: bool = True,
        reconnect_delays_s: Sequence[float] = RECONNECT_DELAYS_S,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.tls_verify = tls_verify
        self.reconnect = reconnect
        self.reconnect_delays_s = tuple(reconnect_delays_s) or RECONNECT_DELAYS_S
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.clock = clock
        self.session = Session(config)
        self.events: queue.Queue[Event] = queue.Queue()
        self.status = "not connected"
        self._connection: Connection | None = None
        self._generation = 0
        self._attempt = 0
        self._reconnect_at: float | None = None
        self._last_received = clock()
        self._ping_sent = False
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting in the background; progress shows up through :meth:`pump`."""
        self._closing = False
        self._connect()

    def _connect(self) -> None:
        self._reconnect_at = None
        self._generation += 1
        self._set_status(f"connecting to {self.host}:{self.port}")
        tls = " (TLS)" if self.tls else ""
        self.session.info(f"Connecting to {self.host}:{self.port}{tls}...", SERVER_KEY)
        self._connection = Connection(
            self.host, self.port, self.events, self._generation, tls=self.tls, tls_verify=self.tls_verify
        )
        self._connection.start()

    def close(self, reason: str = "", flush_timeout_s: float = 1.0) -> None:
        """Send QUIT (when connected), close the connection and stop reconnecting."""
        self._closing = True
        self._reconnect_at = None
        self.session.quit_requested = True
        if self._connection is not None:
            if self.session.connected:
                self.session.send("QUIT", reason or self.session.config.quit_message)
                self.flush()
            self._connection.close(flush_timeout_s)
            self._connection = None
        self.session.connected = False
        self._set_status("disconnected")

    @property
    def closed(self) -> bool:
        return self._closing

    # -- the pump ---------------------------------------------------------------------------------

    def pump(self, timeout_s: float = 0.0, max_events: int = 500) -> list[Change]:
        """Handle queued events (waiting up to ``timeout_s`` for the first), run timers, send output.

        Returns the changes since the last call, for a GUI to draw.
        """
        handled = 0
        block = timeout_s > 0
        while handled < max_events:
            try:
                event = self.events.get(block, timeout_s) if block else self.events.get_nowait()
            except queue.Empty:
                break
            block = False
            handled += 1
            self._handle(event)
        self._timers()
        self.flush()
        return self.session.take_changes()

    def flush(self) -> None:
        """Send whatever the session has queued (after a GUI called into the session)."""
        lines = self.session.take_outbox()
        if self._connection is None or not self.session.connected:
            return
        for line in lines:
            self._connection.send(line)

    def input(self, text: str) -> None:
        """What the user typed, as if in the entry of the active buffer."""
        self.session.input(text)
        if self.session.quit_requested:
            self.close()
        self.flush()

    def wait_until(self, predicate: Callable[[Session], bool], timeout_s: float = 10.0) -> bool:
        """Pump until ``predicate(session)`` holds or the time is up (for tests and scripts)."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.session):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pump(min(remaining, 0.05))
        return True

    # -- internals --------------------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if event.generation != self._generation:
            return
        if isinstance(event, Connected):
            self._last_received = self.clock()
            self._ping_sent = False
            self._set_status(f"registering on {self.host}:{self.port}")
            self.session.begin()
        elif isinstance(event, Received):
            self._last_received = self.clock()
            self._ping_sent = False
            was_registered = self.session.registered
            self.session.receive(event.message)
            if self.session.registered and not was_registered:
                self._attempt = 0
                self._set_status(f"connected to {self.host}:{self.port}")
        elif isinstance(event, Closed):
            self._connection = None
            if self._closing:
                return
            self.session.disconnected(event.reason)
            if self.session.refused is not None:  # the same password would be refused again
                self._set_status(f"disconnected ({self.session.refused})")
                return
            if not self.reconnect:
                self._set_status(f"disconnected ({event.reason})")
                return
            delay = self.reconnect_delays_s[min(self._attempt, len(self.reconnect_delays_s) - 1)]
            self._attempt += 1
            self._reconnect_at = self.clock() + delay
            self.session.info(f"Reconnecting in {delay:g} s...", SERVER_KEY, LineKind.ERROR)
            self._set_status(f"disconnected ({event.reason}); retrying in {delay:g} s")

    def _timers(self) -> None:
        now = self.clock()
        if self._reconnect_at is not None and now >= self._reconnect_at and not self._closing:
            self._connect()
            return
        if self._connection is None or not self.session.registered:
            return
        silent = now - self._last_received
        if silent >= self.ping_timeout_s:
            self.session.error(f"No answer from the server for {silent:.0f} s.", SERVER_KEY)
            self._connection.abort()
        elif silent >= self.ping_interval_s and not self._ping_sent:
            self._ping_sent = True
            self.session.send("PING", "salotto")

    def reconnect_now(self) -> None:
        """Skip the wait (a GUI's "Reconnect" button)."""
        if self._connection is None and not self._closing:
            self._attempt = 0
            self._connect()

    def _set_status(self, text: str) -> None:
        self.status = text
        self.session.emit(ChangeKind.STATUS)
