"""One TCP (or TLS) connection to an IRC server, run by two threads that never touch session state.

The reader thread turns bytes into parsed messages and puts them on the client's event queue; the
writer thread drains an outgoing queue, so nothing that calls :meth:`Connection.send` ever blocks on
the network. Every event carries the connection's generation, so a late event from a connection that
was replaced is recognised and dropped.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Protocol

from salotto.proto import LINE_TOO_LONG, LineReader, Message, decode_line, parse
from salotto.proto.errors import MalformedMessage

__all__ = ["Closed", "Connected", "Connection", "Event", "Received"]

# How long to wait for the TCP (and TLS) handshake before calling the attempt failed.
CONNECT_TIMEOUT_S = 10.0
# recv() size; IRC lines are at most ~8.7 KiB with tags, so this holds several.
RECV_BYTES = 65536
# Servers accept 8191 bytes of tags from servers' side plus the 512-byte message; allow both.
MAX_INCOMING_LINE_BYTES = 512
MAX_INCOMING_TAGS_BYTES = 8191


@dataclass(frozen=True, slots=True)
class Connected:
    generation: int


@dataclass(frozen=True, slots=True)
class Received:
    generation: int
    message: Message


@dataclass(frozen=True, slots=True)
class Closed:
    generation: int
    reason: str


Event = Connected | Received | Closed


class EventSink(Protocol):
    """Where a connection reports (the client's queue, which carries other work too)."""

    def put(self, item: Event, block: bool = ..., timeout: float | None = ...) -> None: ...


class Connection:
    """Connect, then read and write lines on background threads; report everything on ``events``."""

    def __init__(
        self,
        host: str,
        port: int,
        events: EventSink,
        generation: int,
        *,
        tls: bool = False,
        tls_verify: bool = True,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.generation = generation
        self.tls = tls
        self.tls_verify = tls_verify
        self.connect_timeout_s = connect_timeout_s
        self._events = events
        self._outgoing: queue.Queue[bytes | None] = queue.Queue()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._run, name=f"irc-reader-{generation}", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"irc-writer-{generation}", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def send(self, line: str) -> None:
        """Queue one line (without CRLF) for the writer thread."""
        self._outgoing.put(line.encode("utf-8") + b"\r\n")

    def close(self, flush_timeout_s: float = 1.0) -> None:
        """Send what is queued (waiting up to ``flush_timeout_s``), then close the socket."""
        self._outgoing.put(None)
        if self._writer.is_alive():
            self._writer.join(flush_timeout_s)
        self._shutdown()

    def abort(self) -> None:
        """Drop the connection now (a dead peer); the reader reports it as closed."""
        self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            self._closed = True
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        if self.tls:
            context = ssl.create_default_context()
            if not self.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=self.host)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _run(self) -> None:
        try:
            sock = self._open()
        except (OSError, ssl.SSLError) as exc:
            self._events.put(Closed(self.generation, _describe(exc)))
            return
        with self._lock:
            if self._closed:
                sock.close()
                self._events.put(Closed(self.generation, "closed"))
                return
            self._sock = sock
        self._events.put(Connected(self.generation))
        self._writer.start()
        reason = "connection closed by the server"
        reader = LineReader(MAX_INCOMING_LINE_BYTES, MAX_INCOMING_TAGS_BYTES)
        try:
            while True:
                data = sock.recv(RECV_BYTES)
                if not data:
                    break
                for raw in reader.feed(data):
                    if raw is LINE_TOO_LONG or not isinstance(raw, bytes):
                        continue
                    try:
                        message = parse(decode_line(raw))
                    except MalformedMessage:
                        continue
                    self._events.put(Received(self.generation, message))
        except (OSError, ssl.SSLError) as exc:
            reason = _describe(exc)
        with self._lock:
            if self._closed:
                reason = "closed"
        self._outgoing.put(None)
        self._events.put(Closed(self.generation, reason))

    def _write_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            data = self._outgoing.get()
            if data is None:
                return
            try:
                sock.sendall(data)
            except OSError:
                return


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
