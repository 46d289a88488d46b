"""The client: a :class:`Session` driven by a :class:`Connection`, with reconnects and keepalive.

A client may have several servers, the nodes of one network (a salotto cluster): it connects to the
first and, whenever its connection goes (closed, reset, no answer to a PING, or the attempt fails),
moves on to the next one in the list, round robin, keeping its nick and its channels.

All session state lives in the thread that calls :meth:`Client.pump` (the Tk main loop, a test, a
script); the connection's threads only put events on one queue. ``pump`` drains it, feeds the session,
sends what the session queued and returns what changed.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence

from salotto.clients.core.connection import Closed, Connected, Connection, Event, Received
from salotto.clients.core.model import SERVER_KEY, Change, ChangeKind
from salotto.clients.core.servers import Server
from salotto.clients.core.session import Session, SessionConfig

__all__ = ["IMMEDIATE_RETRY_INTERVAL_S", "RECONNECT_DELAYS_S", "Client"]

# Waits between reconnect attempts; the last one repeats. HexChat waits 10 s flat; we start faster
# because a restarting salotto is usually back within a second or two.
RECONNECT_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# Silence after which we PING the server, and after which we call the connection dead.
PING_INTERVAL_S = 90.0
PING_TIMEOUT_S = 240.0
# With several servers, the first retry after a loss goes to the next server at once (it is most likely
# up); at most once in this many seconds, so a server that lets us in and drops us again cannot make the
# client hop in a tight loop: further retries wait RECONNECT_DELAYS_S.
IMMEDIATE_RETRY_INTERVAL_S = 30.0


class Client:
    """Connect to ``host:port`` as ``config.nick``; call :meth:`pump` often (every 50 ms is plenty).

    ``more_servers``: other servers of the same network, tried in turn (after ``host:port``, then round
    robin) whenever a connection is lost or cannot be made.

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
        more_servers: Sequence[tuple[str, int]] = (),
        reconnect: bool = True,
        reconnect_delays_s: Sequence[float] = RECONNECT_DELAYS_S,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers: tuple[Server, ...] = tuple(Server(h, p) for h, p in ((host, port), *more_servers))
        self._server_index = 0
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
        self._attempt = 0  # attempts since the last registration
        self._backoff_step = 0  # how far into reconnect_delays_s
        self._reconnect_at: float | None = None
        self._last_received = clock()
        self._ping_sent = False
        self._closing = False
        self._last_immediate_retry: float | None = None
        self._abort_reason = ""

    @property
    def server(self) -> Server:
        """The server connected to, or being connected to next."""
        return self.servers[self._server_index]

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting in the background; progress shows up through :meth:`pump`."""
        self._closing = False
        self._connect()

    def _connect(self) -> None:
        self._reconnect_at = None
        self._generation += 1
        self._abort_reason = ""
        self._set_status(f"connecting to {self.server}")
        tls = " (TLS)" if self.tls else ""
        self.session.info(f"Connecting to {self.server}{tls}...", SERVER_KEY)
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
            self._set_status(f"registering on {self.server}")
            self.session.begin()
        elif isinstance(event, Received):
            self._last_received = self.clock()
            self._ping_sent = False
            was_registered = self.session.registered
            self.session.receive(event.message)
            if self.session.registered and not was_registered:
                self._attempt = self._backoff_step = 0
                self._set_status(f"connected to {self.server}")
        elif isinstance(event, Closed):
            self._connection = None
            if self._closing:
                return
            reason = self._abort_reason or event.reason
            lost, was_connected = self.server, self.session.connected
            if self.session.refused is not None:  # the same password would be refused again
                self.session.disconnected(reason)
                self._set_status(f"disconnected ({self.session.refused})")
                return
            if not self.reconnect:
                self.session.disconnected(reason)
                self._set_status(f"disconnected ({reason})")
                return
            delay = self._retry_delay()
            self._server_index = (self._server_index + 1) % len(self.servers)
            self._reconnect_at = self.clock() + delay
            what = f"connection to {lost} lost" if was_connected else f"could not connect to {lost}"
            plan = f"connecting to {self.server}" + (f" in {delay:g} s" if delay else "")
            self.session.disconnected(reason, f"{what[0].upper()}{what[1:]} ({reason}); {plan}...")
            self._set_status(f"{what} ({reason}); {plan}")

    def _retry_delay(self) -> float:
        """Seconds before the next attempt: at once to another server after a loss, else the backoff."""
        now = self.clock()
        first = self._attempt == 0
        self._attempt += 1
        if len(self.servers) > 1 and first and (
                self._last_immediate_retry is None
                or now - self._last_immediate_retry >= IMMEDIATE_RETRY_INTERVAL_S):
            self._last_immediate_retry = now
            return 0.0
        delay = self.reconnect_delays_s[min(self._backoff_step, len(self.reconnect_delays_s) - 1)]
        self._backoff_step += 1
        return delay

    def _timers(self) -> None:
        now = self.clock()
        if self._reconnect_at is not None and now >= self._reconnect_at and not self._closing:
            self._connect()
            return
        if self._connection is None or not self.session.registered or self._abort_reason:
            return  # (not yet up, or dropped for silence and its Closed on the way)
        silent = now - self._last_received
        if silent >= self.ping_timeout_s:
            self.session.error(f"No answer from the server for {silent:.0f} s.", SERVER_KEY)
            self._abort_reason = f"no answer for {silent:.0f} s"
            self._connection.abort()
        elif silent >= self.ping_interval_s and not self._ping_sent:
            self._ping_sent = True
            self.session.send("PING", "salotto")

    def reconnect_now(self) -> None:
        """Skip the wait (a GUI's "Reconnect" button)."""
        if self._connection is None and not self._closing:
            self._attempt = self._backoff_step = 0
            self._connect()

    def _set_status(self, text: str) -> None:
        self.status = text
        self.session.emit(ChangeKind.STATUS)
