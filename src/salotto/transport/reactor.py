"""Plain-TCP IRC connections on an epoll set of our own, which the event loop watches as one descriptor.

An asyncio (or uvloop) transport costs some 1.2 KiB of memory per connection before any IRC state: the
transport object, its libuv handle, the loop's weak reference to it. Here a connection is a socket and one
small object (:class:`TcpConnection`) in a list indexed by descriptor; the sockets sit in one
``select.epoll`` (level-triggered) whose own descriptor is the only one the event loop polls. When any of
them is ready, the loop runs :meth:`Reactor._poll`, which takes every ready socket in one ``epoll_wait``.
Idle connections cost nothing else (measured: about 170 bytes per idle socket against 1,225 for uvloop's
transports; docs/benchmarks.md has the table).

What a connection writes in a loop pass is sent in one ``write`` when the pass ends (the Flusher); what the
kernel does not take at once waits in the connection's own buffer, with the socket watched for writing,
and counts against ``max_sendq_bytes``. Closing sends what is queued, then FIN, and reads (and drops)
what the client still sends for at most :data:`CLOSE_LINGER_S`, so that the ERROR line is not destroyed
by a reset when the client's last lines were still unread; after :data:`CLOSE_GRACE_S` a peer that does
not take its last lines is cut.

The plain web port's connections (HTTP and WebSocket) are asyncio protocols on a :class:`StreamTransport`
of the reactor. TLS ports (IRC and web) and the PROXY-protocol port keep asyncio's transports
(salotto.transport.stream, salotto.transport.tls): they need its TLS machinery, or hand a connection
from one protocol to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import socket
from collections.abc import Callable

from salotto.server.client import Client
from salotto.server.state import Server
from salotto.transport.flusher import Flusher
from salotto.transport.inbound import ConfiguredLines, Fakelag, unmapped
from salotto.transport.outbound import IDLE as _IDLE

__all__ = ["CLOSE_LINGER_S", "RECV_BYTES", "Reactor", "TcpConnection", "TcpListener"]

log = logging.getLogger("salotto.transport")

# Bytes taken from a socket per read; a client that sent more is read again on the next pass.
RECV_BYTES = 65536
# After the server closed a connection (its ERROR sent and FIN with it), seconds to read and drop what
# the client still sends before the socket is closed: closing with unread bytes would answer with a
# reset, which can destroy the ERROR line in flight.
CLOSE_LINGER_S = 1.0
# Seconds a closing connection has to take its last lines before it is cut (as salotto.transport.stream).
CLOSE_GRACE_S = 5.0
# When accept() fails for want of descriptors, seconds before the listeners try again (a level-
# triggered listener would otherwise wake the loop at once, for ever).
ACCEPT_PAUSE_S = 0.1
# Connections accepted per listener per loop pass: a connect storm does not starve the clients.
ACCEPTS_PER_PASS = 256
# Client addresses whose string new connections share (see Reactor._address); past it the cache starts over.
ADDRESS_CACHE_SIZE = 65_536
# Unsent bytes past which a StreamTransport tells its protocol to pause writing (asyncio's default too).
WRITE_HIGH_BYTES = 65536
# Ready sockets taken per epoll_wait.
EVENTS_PER_POLL = 1024

_IN = select.EPOLLIN
_IN_OUT = select.EPOLLIN | select.EPOLLOUT
_OUT = select.EPOLLOUT
_NOT_WRITABLE = ~select.EPOLLOUT & 0xFFFFFFFF

# _Stream._state
_OPEN = 0
_CLOSING = 1  # our side closes: sending what is queued, then FIN, then the linger
_CLOSING_QUIET = 2  # the same without the linger (the peer has ended already, or has nothing to say)
_LINGERING = 3  # FIN sent: reading and dropping until the peer closes or CLOSE_LINGER_S passes
_CLOSED = 4


class TcpListener:
    """Listening sockets for one ``listen`` entry (``.sockets`` and ``.close()``, as asyncio's Server);
    ``factory``: the protocol each connection gets (None: an IRC client, :class:`TcpConnection`)."""

    __slots__ = ("_loop", "_reactor", "factory", "sockets")

    def __init__(self, reactor: Reactor, sockets: list[socket.socket],
                 factory: Callable[[], asyncio.Protocol] | None) -> None:
        self._reactor = reactor
        self._loop = reactor.loop
        self.sockets = sockets
        self.factory = factory

    def close(self) -> None:
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        self._reactor.listeners.discard(self)


class Reactor:
    """The plain-TCP connections of one server: their epoll set, their listeners."""

    __slots__ = ("_addresses", "_ep", "_paused", "conns", "flusher", "listeners", "loop", "server")

    def __init__(self, server: Server, flusher: Flusher, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.flusher = flusher
        self.loop = loop
        self._ep = select.epoll()
        # The connection on each descriptor (a list indexed by descriptor, which the kernel hands out
        # lowest first: 8 bytes per connection, where a dict takes some 70).
        self.conns: list[_Stream | None] = []
        self.listeners: set[TcpListener] = set()
        self._paused = False
        self._addresses: dict[str, str] = {}
        loop.add_reader(self._ep.fileno(), self._poll)

    def listen(self, host: str, port: int, backlog: int,
               factory: Callable[[], asyncio.Protocol] | None = None) -> TcpListener:
        """Bind every address ``host`` names (all of them for ``""``), as ``loop.create_server`` does.
        Connections are IRC clients, or get a ``factory()`` protocol on a :class:`StreamTransport`."""
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                try:
                    sock = socket.socket(family, kind, proto)
                except OSError:  # a family this host lacks (IPv6 disabled): its other addresses, as asyncio
                    if family == socket.AF_INET6 and len(infos) > 1:
                        continue
                    raise
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    # As asyncio: each family on its own socket, so "::" does not take IPv4's port too.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        listener = TcpListener(self, sockets, factory)
        for sock in sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock, factory)
        self.listeners.add(listener)
        return listener

    def close(self) -> None:
        """Close the listeners, every connection left (at once) and the epoll set."""
        for listener in list(self.listeners):
            listener.close()
        for conn in [conn for conn in self.conns if conn is not None]:
            conn.abort()
        self.loop.remove_reader(self._ep.fileno())
        self._ep.close()

    def _accept(self, listening: socket.socket, factory: Callable[[], asyncio.Protocol] | None) -> None:
        for _ in range(ACCEPTS_PER_PASS):
            try:
                sock, address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting(exc)
                else:  # ECONNABORTED and the like: that one connection is gone, not the listener
                    log.debug("accept failed: %s", exc)
                return
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:  # gone already (reset before we got to it)
                log.debug("connection from %s gone on arrival: %s", address[0], exc)
                sock.close()
                continue
            ip = self._address(unmapped(address[0]))
            fd = sock.detach()
            conns = self.conns
            if fd >= len(conns):
                conns.extend([None] * max(fd + 1 - len(conns), len(conns)))
            # Served from the next callback on, as asyncio does (connection_made goes through call_soon): the
            # ends of connections seen in this same pass reach the server first, and free their places
            # under the per-address and pending limits.
            if factory is None:
                conns[fd] = TcpConnection(self, fd, ip)
            else:
                conns[fd] = StreamTransport(self, fd, (ip, address[1]), factory())
            self.loop.call_soon(self._start, fd)

    def _start(self, fd: int) -> None:
        conn = self.conns[fd]
        if conn is None:
            return  # closed meanwhile (the reactor closed)
        self._ep.register(fd, _IN)
        if isinstance(conn, TcpConnection):
            conn.client = self.server.accept(conn)
        elif isinstance(conn, StreamTransport):
            conn.start()

    def _address(self, ip: str) -> str:
        """One string per address, shared by its connections (Client.ip and .host hold it; many connections
        come from one address behind a proxy or NAT). A bounded cache, not sys.intern: interned strings
        are immortal on some Pythons, and a storm of addresses must not stay."""
        known = self._addresses.get(ip)
        if known is None:
            if len(self._addresses) >= ADDRESS_CACHE_SIZE:
                self._addresses.clear()
            known = self._addresses[ip] = ip
        return known

    def _pause_accepting(self, exc: OSError) -> None:
        if self._paused:
            return
        self._paused = True
        log.warning("cannot accept connections: %s; trying again in %g s", exc.strerror, ACCEPT_PAUSE_S)
        for listener in self.listeners:
            for sock in listener.sockets:
                self.loop.remove_reader(sock.fileno())
        self.loop.call_later(ACCEPT_PAUSE_S, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._paused = False
        for listener in self.listeners:
            for sock in listener.sockets:
                if sock.fileno() >= 0:
                    self.loop.add_reader(sock.fileno(), self._accept, sock, listener.factory)

    def _poll(self) -> None:
        try:
            events = self._ep.poll(0, EVENTS_PER_POLL)
        except OSError:  # closed under us (shutdown)
            return
        conns = self.conns
        for fd, mask in events:
            conn = conns[fd]
            if conn is None:
                continue  # closed earlier in this pass
            try:
                if mask & _OUT:
                    conn.writable()
                if mask & _NOT_WRITABLE and conn.fd >= 0:  # readable, or an error / hang-up a read reports
                    conn.readable()
            except Exception:  # our bug: log it; the other connections go on
                log.exception("internal error on a connection (descriptor %d)", fd)
                conn.abort()

    def watch(self, fd: int, mask: int) -> None:
        self._ep.modify(fd, mask)

    def forget(self, fd: int) -> None:
        self.conns[fd] = None
        with contextlib.suppress(OSError, ValueError):  # (not registered yet: closed before _start)
            self._ep.unregister(fd)


class _Stream:
    """A socket on the reactor as a bare descriptor: sending (what the kernel does not take waits, with
    the socket watched for writing), closing (what is queued, then FIN, then a short linger) and the end."""

    __slots__ = ("_reactor", "_state", "_timer", "_unsent", "fd")

    def __init__(self, reactor: Reactor, fd: int) -> None:
        self._reactor = reactor
        self.fd = fd
        # What the kernel did not take yet (None while it takes everything: no buffer for idle clients).
        self._unsent: bytearray | None = None
        self._state = _OPEN
        self._timer: asyncio.TimerHandle | None = None

    def readable(self) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> int:
        """Send ``data`` now, or queue it behind what waits; returns the bytes left waiting (-1: the
        connection failed and is closed)."""
        unsent = self._unsent
        if unsent is not None:  # the kernel's buffer is full: queue behind what waits
            unsent += data
            return len(unsent)
        try:
            sent = os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._failed(exc)
            return -1
        if sent == len(data):
            return 0
        self._unsent = unsent = bytearray(memoryview(data)[sent:])
        self._reactor.watch(self.fd, _IN_OUT)
        return len(unsent)

    def writable(self) -> None:
        unsent = self._unsent
        if unsent is None or self._state == _CLOSED:
            return
        try:
            sent = os.write(self.fd, unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._failed(exc)
            return
        del unsent[:sent]
        if unsent:
            return
        self._unsent = None
        if self._state == _CLOSING or self._state == _CLOSING_QUIET:
            self._half_close()
        elif self._state == _OPEN:
            self._reactor.watch(self.fd, _IN)

    def abort(self) -> None:
        """Close at once, whatever is queued (shutdown, a grace period over)."""
        self._finish(None)

    def _begin_close(self, linger: bool) -> None:
        """Send what is queued, then FIN; ``linger``: then read and drop what the peer still sends, for at
        most CLOSE_LINGER_S, before closing (CLOSE_GRACE_S in all)."""
        self._state = _CLOSING if linger else _CLOSING_QUIET
        self._timer = self._reactor.loop.call_later(CLOSE_GRACE_S, self.abort)
        if self._unsent is None:
            self._half_close()
        # else writable() half-closes once the kernel has taken the rest

    def _half_close(self) -> None:
        """Everything was sent: FIN, then read and drop until the peer closes too (or the linger ends)."""
        lingering = self._state == _CLOSING
        self._state = _LINGERING
        sock = socket.socket(fileno=self.fd)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.detach()
            self._finish(None)
            return
        sock.detach()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not lingering:
            self._finish(None)
            return
        self._reactor.watch(self.fd, _IN)
        self._timer = self._reactor.loop.call_later(CLOSE_LINGER_S, self.abort)

    def _read(self) -> bytes | None:
        """What the peer sent; b"" at its end (EOF); None: nothing to take now, or the connection failed
        (and is closed). After the server's side began closing, the peer's EOF ends the linger."""
        try:
            data = os.read(self.fd, RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._failed(exc)
            return None
        if not data and self._state:
            if self._unsent is None:
                self._finish(None)
            else:
                # The peer has nothing more to say but may still be reading: what the kernel did not take
                # yet goes out first (writable() closes once it has; CLOSE_GRACE_S bounds the wait). The
                # EOF stays readable: stop watching for it, and write now (a dead socket fails at once).
                self._state = _CLOSING_QUIET
                self._reactor.watch(self.fd, _OUT)
                self.writable()
            return None
        return data

    def _failed(self, exc: OSError) -> None:
        self._finish(None if self._state else f"Connection error: {_describe(exc)}", exc)

    def _finish(self, reason: str | None, exc: OSError | None = None) -> None:
        """Close the socket; ``reason``: the peer's side ended it (None: ours did), on error ``exc``."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._unsent = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._reactor.forget(self.fd)
        os.close(self.fd)
        self.fd = -1
        self._ended(reason, exc)

    def _ended(self, reason: str | None, exc: OSError | None) -> None:
        raise NotImplementedError


class TcpConnection(_Stream, Fakelag, ConfiguredLines):
    """One client over plain TCP (:class:`~salotto.server.client.Connection`).

    It is its own fakelag gate and its own line reader, and holds the socket as a bare descriptor: one
    object per idle connection, beside what the server keeps of the client.
    """

    __slots__ = (
        "_buffer", "_discarding", "_drain_handle", "_held", "_loop", "_server", "_tat", "client", "outbox",
        "peer_ip", "stopped",
    )  # fmt: skip
    transport_name = "tcp"

    def __init__(self, reactor: Reactor, fd: int, peer_ip: str) -> None:
        super().__init__(reactor, fd)
        self._start_gate(reactor.server, reactor.loop)
        self.peer_ip = peer_ip
        self.client: Client | None = None
        self._buffer = b""
        self._discarding = False
        # This loop pass's output (the fanout appends to it directly), sent in one write by flush_now;
        # while there is none, the shared empty _IDLE (an idle connection holds no list).
        self.outbox: list[bytes] = _IDLE

    def __repr__(self) -> str:
        return f"<TcpConnection fd={self.fd} {self.peer_ip}>"

    # -- salotto.server.client.Connection ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._state:
            return
        out = self.outbox
        if not out:
            out = self.mark_pending()
        out.append(data)

    def mark_pending(self) -> list[bytes]:
        out = self.outbox = []
        self._reactor.flusher.add(self)
        return out

    def close(self, reason: str) -> None:
        """Send what is queued, then close (the server's side: ERROR was written before)."""
        if not self._state:
            # A client refused on arrival has nothing to wait for; a client's last lines may still come.
            self._flush_and_close(linger=self.client is not None)

    def _flush_and_close(self, linger: bool) -> None:
        self._server.commit_pending()  # nothing leaves before it is durable
        self.flush_now()
        if not self._state:  # (the flush may have found the connection gone)
            self.stop()
            self._begin_close(linger)

    # -- the Flusher's side -----------------------------------------------------------------------

    def flush_now(self) -> None:
        """Send what this loop pass wrote, in one write."""
        out = self.outbox
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self.outbox = _IDLE
        if self._state:
            return  # closed or closing: what it did not get is dropped
        server = self._server
        server.stats.bytes_out += len(data)
        waiting = self._send(data)
        if waiting > server.config.max_sendq_bytes:
            self._sendq_exceeded(waiting)

    # -- the reactor's side -----------------------------------------------------------------------

    def readable(self) -> None:
        data = self._read()
        if data is None or self._state:
            return  # nothing, over, or closing (what the client still sends is dropped)
        if not data:  # the client's EOF: what this pass wrote and what is queued go out, then the end (the
            self._flush_and_close(linger=False)  # server hears of it when the socket is closed)
            return
        client = self.client
        if client is None:
            return
        self._server.stats.bytes_in += len(data)
        lines = self.feed(data)
        if lines:
            self.push(client, lines)

    # -- ending -----------------------------------------------------------------------------------

    def _sendq_exceeded(self, size: int) -> None:
        """The client does not read: drop it at once, nobody else waits for it."""
        if self.client is not None:
            log.info("send queue of %s (%s) exceeded %d bytes", self.client.nick, self.peer_ip,
                     self._server.config.max_sendq_bytes)
        else:
            log.info("send queue of an unregistered connection from %s exceeded %d bytes", self.peer_ip, size)
        self._finish("SendQ exceeded")

    def _ended(self, reason: str | None, exc: OSError | None) -> None:
        """The server hears of it on the next loop pass (this may run in the middle of a fanout); it
        ignores the end of a connection it closed itself."""
        self.stop()
        self.outbox = _IDLE
        client = self.client
        if client is not None:
            self._reactor.loop.call_soon(_lost, self._server, client, reason or "Connection closed")


class StreamTransport(_Stream):
    """A connection on the reactor as the asyncio transport an :class:`asyncio.Protocol` expects (the
    plain web port's HTTP and WebSocket connections): write, close, abort, is_closing,
    get_write_buffer_size, get_extra_info, pause_reading and resume_reading; and, as asyncio's do, it calls
    the protocol's pause_writing past :data:`WRITE_HIGH_BYTES` unsent and resume_writing once all is sent
    (a file download's flow control). The protocol enforces its own send queue limit."""

    __slots__ = ("_live", "_peer", "_protocol", "_reading_paused", "_writing_paused")

    def __init__(self, reactor: Reactor, fd: int, peer: tuple[str, int], protocol: asyncio.Protocol) -> None:
        super().__init__(reactor, fd)
        self._peer = peer
        self._protocol = protocol
        self._live = False  # connection_made has returned: the protocol took it (it did not refuse it)
        self._reading_paused = False
        self._writing_paused = False

    def start(self) -> None:
        self._protocol.connection_made(self)  # type: ignore[arg-type]  # the transport's API, duck-typed
        self._live = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._peer if name == "peername" else default  # TCP_NODELAY is set already

    def write(self, data: bytes) -> None:
        if not self._state and data:
            left = self._send(data)
            if left > 0:
                if self._reading_paused:
                    self._reactor.watch(self.fd, _OUT)
                if left > WRITE_HIGH_BYTES and not self._writing_paused:
                    self._writing_paused = True
                    self._protocol.pause_writing()

    def writable(self) -> None:
        super().writable()
        if self._unsent is None and self._state == _OPEN:
            if self._reading_paused:
                self._reactor.watch(self.fd, 0)
            if self._writing_paused:
                self._writing_paused = False
                self._protocol.resume_writing()

    def pause_reading(self) -> None:
        if not self._state and not self._reading_paused:
            self._reading_paused = True
            self._reactor.watch(self.fd, _OUT if self._unsent is not None else 0)

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if not self._state:
                self._reactor.watch(self.fd, _IN_OUT if self._unsent is not None else _IN)

    def get_write_buffer_size(self) -> int:
        return len(self._unsent) if self._unsent is not None else 0

    def is_closing(self) -> bool:
        return self._state != _OPEN

    def close(self) -> None:
        if not self._state:
            # No linger for a connection refused on arrival (a 503 from the pending limits): a storm of
            # them must not hold a descriptor each for CLOSE_LINGER_S.
            self._begin_close(linger=self._live)

    def readable(self) -> None:
        data = self._read()
        if data is None or self._state:
            return
        if data:
            self._protocol.data_received(data)
            return
        # EOF: the protocol hears of it; what is queued is sent, then the connection closes, without a
        # linger (it waits for the peer's EOF, which came). As asyncio's transports do, a protocol that
        # answers True keeps it open (its answer is still to come) and closes it itself.
        keep_open = self._protocol.eof_received()
        state = self._state
        if state == _OPEN and keep_open:
            self._reading_paused = True  # the EOF stays readable: stop watching for it
            self._reactor.watch(self.fd, _OUT if self._unsent is not None else 0)
        elif state == _OPEN:
            self._begin_close(linger=False)
        elif state == _CLOSING:  # the protocol closed it meanwhile
            self._state = _CLOSING_QUIET
        elif state == _LINGERING:
            self._finish(None)

    def _ended(self, reason: str | None, exc: OSError | None) -> None:
        self._reactor.loop.call_soon(self._protocol.connection_lost, exc)


def _lost(server: Server, client: Client, reason: str) -> None:
    server.connection_lost(client, reason)


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    return exc.strerror or type(exc).__name__

