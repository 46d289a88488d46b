"""The client: a :class:`Session` driven by a :class:`Connection`, with reconnects and keepalive.

A client may have several servers, the nodes of one network (a salotto cluster): it connects to the
first and, whenever its connection goes (closed, reset, no answer to a PING, or the attempt fails),
moves on to the next one in the list, round robin, keeping its nick and its channels.

All session state lives in the thread that calls :meth:`Client.pump` (the Tk main loop, a test, a
script); the connection's threads only put events on one queue. ``pump`` drains it, feeds the session,
sends what the session queued and returns what changed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from salotto.clients.core import files
from salotto.clients.core.connection import Closed, Connected, Connection, Event, Received
from salotto.clients.core.model import SERVER_KEY, Change, ChangeKind
from salotto.clients.core.servers import Server
from salotto.clients.core.session import Session, SessionConfig

__all__ = ["IMMEDIATE_RETRY_INTERVAL_S", "RECONNECT_DELAYS_S", "Client", "Transfer"]

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
# Previews fetched at once (each on a worker thread); the others wait their turn.
PREVIEW_WORKERS = 2
# Bytes of preview images kept in memory; the oldest go first (and are fetched again when shown again).
PREVIEW_CACHE_BYTES = 64 * 1024 * 1024
# Progress reports per upload at most this often (each one redraws the status line).
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class _Call:
    """Work a background thread hands to the pumping thread (the result of an upload or a preview)."""

    run: Callable[[], None]


@dataclass(slots=True)
class Transfer:
    """One upload: where it goes, how far it is, and how it ended."""

    name: str
    target: str  # the buffer whose conversation gets the link
    total: int
    sent: int = 0
    state: str = "sending"  # then "done", "failed" or "cancelled"
    url: str = ""
    error: str = ""
    cancel: files.Cancel = field(default_factory=files.Cancel, repr=False)

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.sent * 100 // self.total)


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
        self.events: queue.Queue[Event | _Call] = queue.Queue()
        # Uploads of this run, oldest first; previews of shared files by URL (None: being fetched).
        self.transfers: list[Transfer] = []
        self.previews: dict[str, files.Preview | None] = {}
        self._preview_pool: ThreadPoolExecutor | None = None
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
        if self._preview_pool is not None:
            self._preview_pool.shutdown(wait=False, cancel_futures=True)
            self._preview_pool = None
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
        while self.session.uploads_wanted:
            path, target = self.session.uploads_wanted.pop(0)
            self.upload(path, target)
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

    # -- files: uploads and previews -------------------------------------------------------------

    @property
    def activity(self) -> str:
        """What the client is busy with besides chatting (uploads), for a status line; "" when idle."""
        sending = [t for t in self.transfers if t.state == "sending"]
        if not sending:
            return ""
        if len(sending) == 1:
            t = sending[0]
            return f"uploading {t.name} ({files.human_size(t.total)}): {t.percent}%"
        done = sum(t.sent for t in sending) * 100 // max(sum(t.total for t in sending), 1)
        return f"uploading {len(sending)} files: {done}%"

    @property
    def status_text(self) -> str:
        """The connection's status, and the uploads in progress."""
        return f"{self.status} \u00b7 {self.activity}" if self.activity else self.status

    def upload(self, path: str | os.PathLike[str], target: str = "", name: str = "") -> Transfer | None:
        """Share the file at ``path`` in buffer ``target`` (the active one by default), in the background.

        The upload goes to the server's file host (``soju.im/FILEHOST``) with the login's credentials;
        when it is stored, its link is sent as a message to ``target``. Progress and the outcome come as
        :attr:`ChangeKind.TRANSFER` changes (see :attr:`transfers`); a refusal is an error line in
        ``target``. None (and an error line) when it cannot start: no file host, not logged in, no file.
        """
        s = self.session
        target = target or s.active_name()
        path = os.path.expanduser(path)  # "~/Pictures/cat.png" as typed after /upload
        name = name or Path(path).name
        problem = files.upload_problem(s, self.tls)
        if not problem:
            try:
                size = os.stat(path).st_size
                if not Path(path).is_file():
                    problem = f"{path} is not a file"
            except OSError as exc:
                problem = f"cannot read {path}: {exc.strerror or exc}"
        if problem:
            s.error(f"Could not share {name}: {problem}.", target)
            return None
        transfer = Transfer(name, target, size)
        self.transfers.append(transfer)
        s.emit(ChangeKind.TRANSFER, s.key(target) if target != SERVER_KEY else SERVER_KEY)
        url, account, password = files.filehost(s), s.config.sasl_account, s.config.sasl_password
        thread = threading.Thread(target=self._upload_worker, args=(transfer, url, path, account, password),
                                  name=f"upload-{name}", daemon=True)
        thread.start()
        return transfer

    def cancel_upload(self, transfer: Transfer | None = None) -> bool:
        """Stop ``transfer`` (every upload in progress when None); False when none was in progress."""
        sending = [t for t in self.transfers if t.state == "sending" and (transfer is None or t is transfer)]
        for t in sending:
            t.cancel.cancel()
        return bool(sending)

    def _upload_worker(self, transfer: Transfer, url: str, path: str | os.PathLike[str], account: str,
                       password: str) -> None:
        last = 0.0

        def progress(sent: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S or sent >= total:
                last = now
                self.events.put(_Call(lambda: self._upload_progress(transfer, sent)))

        try:
            location = files.upload(url, path, account=account, password=password, name=transfer.name,
                                    progress=progress, verify=self.tls_verify, cancel=transfer.cancel)
        except files.UploadCancelled:
            self.events.put(_Call(lambda: self._upload_ended(transfer, "", "")))
            return
        except files.UploadError as exc:
            message = str(exc)
            self.events.put(_Call(lambda: self._upload_ended(transfer, "", message)))
            return
        self.events.put(_Call(lambda: self._upload_ended(transfer, location, "")))

    def _upload_progress(self, transfer: Transfer, sent: int) -> None:
        if transfer.state == "sending":
            transfer.sent = sent
            self.session.emit(ChangeKind.TRANSFER, self._key(transfer.target))

    def _upload_ended(self, transfer: Transfer, url: str, error: str) -> None:
        s = self.session
        transfer.url, transfer.error = url, error
        transfer.state = "done" if url else "failed" if error else "cancelled"
        if transfer.state == "cancelled":
            s.info(f"The upload of {transfer.name} was cancelled.", transfer.target)
        elif url:
            transfer.sent = transfer.total
            if s.registered:
                s.say(transfer.target, url)
            else:
                s.error(f"{transfer.name} was stored at {url}, but the connection is down: send the link "
                        "once it is back.", transfer.target)
        else:
            s.error(f"Could not share {transfer.name}: {error}.", transfer.target)
        s.emit(ChangeKind.TRANSFER, self._key(transfer.target))

    def _key(self, name: str) -> str:
        return SERVER_KEY if name == SERVER_KEY else self.session.key(name)

    def file_urls(self, text: str) -> list[str]:
        """The links in ``text`` to files on this server's file host (what gets a preview)."""
        return files.file_urls(text, files.filehost(self.session))

    def preview(self, url: str) -> files.Preview | None:
        """The preview of a shared file at ``url``; None while it is fetched (a PREVIEW change follows).

        Only URLs on the server's file host are fetched; for others the preview is a bare link.
        """
        if url in self.previews:
            return self.previews[url]
        host = files.filehost(self.session)
        if not host or not files.same_origin(url, host) or (urlsplit_scheme(host) == "http" and self.tls):
            return files.Preview(url, files.file_name(url))
        self.previews[url] = None
        if self._preview_pool is None:
            self._preview_pool = ThreadPoolExecutor(PREVIEW_WORKERS, thread_name_prefix="preview")
        verify = self.tls_verify

        def fetch() -> None:  # no credentials: shared files are public by their unguessable URL
            result = files.fetch_preview(url, verify=verify)
            self.events.put(_Call(lambda: self._preview_arrived(result)))

        self._preview_pool.submit(fetch)
        return None

    def _preview_arrived(self, preview: files.Preview) -> None:
        self.previews[preview.url] = preview
        kept = 0
        for url, known in reversed(list(self.previews.items())):  # newest first: the oldest images go
            if known is not None and known.image is not None:
                kept += len(known.image)
                if kept > PREVIEW_CACHE_BYTES:
                    del self.previews[url]
        self.session.emit(ChangeKind.PREVIEW, preview.url)

    def _handle(self, event: Event | _Call) -> None:
        if isinstance(event, _Call):
            event.run()
            return
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


def urlsplit_scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()
