"""IRC over WebSocket (https://ircv3.net/specs/extensions/websocket), as an asyncio Protocol.

One TCP connection to the web port carries either one plain HTTP request (answered by an
:class:`HttpResponder`, then closed) or a WebSocket upgrade, after which it is an IRC client like a
TCP one: the server core gets the same lines, the same fakelag and the same send queue limit.

The handshake is the ``websockets`` library's Sans-I/O core; the frames of an open connection
(masking, the limits, close and ping handling) are :class:`~salotto.transport.wsframes.FrameLayer`'s.
This adapter feeds them bytes and acts on their events.

Framing, per the IRCv3 specification:

* one IRC line per message, without CRLF (a trailing CRLF or LF from a client is accepted, and a
  message holding several lines is taken line by line, as over TCP);
* subprotocol ``binary.ircv3.net``: the server sends binary messages, bytes as they are;
  ``text.ircv3.net`` or none negotiated: text messages, where bytes that are not UTF-8 (from a TCP
  client in another encoding) are replaced with U+FFFD; the client may send either kind whatever was
  negotiated, and a text message that is not UTF-8 fails the connection (close code 1007, RFC 6455).

Behind a reverse proxy: a connection whose socket peer is in ``trusted_proxies`` takes the client's
address from the request's ``Forwarded`` or ``X-Forwarded-For`` header (:mod:`salotto.transport.forwarded`);
it is the client's ``peer_ip`` from then on (limits, bans, WHOIS, logs). Headers that do not name the client
get 400, never the proxy's address. Anyone else's headers are not read.

Limits: a message over ``max_line_bytes`` (+ ``max_tags_bytes`` with tags) is answered with 417
and dropped, as over TCP; one over :func:`hard_message_limit` is not even buffered: the connection
is closed with code 1009.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from websockets.exceptions import PayloadTooBig
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from salotto.config import Config
from salotto.server.client import Client
from salotto.server.pending import PendingConnection
from salotto.server.state import Server
from salotto.transport.files import FILES_PREFIX, Download, FileService, Upload, text_response
from salotto.transport.flusher import Flusher
from salotto.transport.forwarded import is_trusted, resolve_client
from salotto.transport.inbound import ConfiguredLines, Fakelag, prepare_socket
from salotto.transport.outbound import IDLE, OutboxProtocol
from salotto.transport.wsframes import FrameLayer

__all__ = [
    "SUBPROTOCOL_BINARY",
    "SUBPROTOCOL_TEXT",
    "HttpResponder",
    "WebSocketIrcProtocol",
    "encode_frame",
    "hard_message_limit",
]

log = logging.getLogger("salotto.transport")

SUBPROTOCOL_TEXT: Final = Subprotocol("text.ircv3.net")
SUBPROTOCOL_BINARY: Final = Subprotocol("binary.ircv3.net")
_SUBPROTOCOLS: Final = (SUBPROTOCOL_TEXT, SUBPROTOCOL_BINARY)
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE = Opcode.CONT, Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE
_POST: Final = b"POST "

# A connection that has not sent a complete HTTP request by then is closed (slowloris).
HANDSHAKE_TIMEOUT_S: Final = 10.0
# After our close frame, time the client gets to answer with its own before we drop the TCP connection.
CLOSE_TIMEOUT_S: Final = 2.0
# Messages between the line limit and this many times it are answered with 417 (the same as TCP);
# bigger ones are refused by the frame parser before their payload is read, with close code 1009.
HARD_LIMIT_FACTOR: Final = 2


def hard_message_limit(config: Config) -> int:
    """Largest WebSocket message buffered at all: twice the longest line with tags (about 17 KiB)."""
    return HARD_LIMIT_FACTOR * (config.max_line_bytes + config.max_tags_bytes)


class HttpResponder(Protocol):
    """What the web service offers this transport for requests that are not IRC."""

    # Uploads and downloads (salotto.transport.files); None: uploads are off.
    files: FileService | None

    def respond(self, request: Request) -> Response:
        """The answer to a plain HTTP request (page, static file, /healthz, /metrics)."""

    def origin_allowed(self, request: Request) -> bool:
        """Whether a WebSocket upgrade from this request's Origin may go ahead."""


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented server-to-client frame (RFC 6455 section 5.2).

    Written by hand rather than through the library's Frame objects: it runs once per line per
    recipient on the fanout path, and a server frame has no mask and no extension to apply.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def _select_subprotocol(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first of the client's choices that we speak; none offered or none known: text, unnamed."""
    for name in offered:
        if name in _SUBPROTOCOLS:
            return name
    return None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_upgrade(request: Request) -> bool:
    return any(value.strip().lower() == "websocket" for value in request.headers.get_all("Upgrade"))


class ForwardedAddresses:
    """The client's address for requests from trusted proxies.

    Never the proxy's own: it carries everyone's connections, and is usually in ``throttle_exempt``. A
    request whose forwarding headers cannot be used (malformed, naming no address, or a ``Forwarded`` and
    an ``X-Forwarded-For`` that disagree) has no client address, nor has a WebSocket upgrade without
    either header; a plain request without them (the proxy's health check) is the proxy's. The first
    unusable one from each proxy is logged as a warning, later ones at debug level: the request's client
    may have written the header that spoils it, and must not be able to fill the log."""

    __slots__ = ("_warned", "server")
    _MAX_WARNED: Final = 1024

    def __init__(self, server: Server) -> None:
        self.server = server
        self._warned: set[str] = set()

    def trusted(self, socket_ip: str) -> bool:
        return is_trusted(socket_ip, self.server.trusted_proxies)

    def client(self, socket_ip: str, request: Request, *, upgrade: bool) -> str | None:
        """The address of the client a trusted proxy's request is from; None: the request cannot say."""
        resolved = resolve_client(request.headers.get_all, self.server.trusted_proxies)
        if resolved.address is not None:
            return resolved.address
        problem = resolved.problem
        if problem is None:
            if not upgrade:
                return socket_ip  # a health check, a page load from the proxy's own host: no client made
            problem = "a WebSocket upgrade without Forwarded or X-Forwarded-For"
        if socket_ip in self._warned:
            log.debug("trusted proxy %s: %s; answered 400", socket_ip, problem)
        else:
            if len(self._warned) < self._MAX_WARNED:
                self._warned.add(socket_ip)
            log.warning("trusted proxy %s: %s; answered 400 (further ones from it are logged at debug level)",
                        socket_ip, problem)
        return None


def _busy_response(refusal: str) -> bytes:
    """The 503 a connection over a pending cap gets at once, whatever it was going to ask."""
    body = f"{refusal}; retry.\n".encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\nRetry-After: 10\r\n\r\n" + body)


class WebSocketIrcProtocol(OutboxProtocol, Fakelag, ConfiguredLines):
    """One connection to the web port: an HTTP request, or an IRC client over WebSocket."""

    # It is its own fakelag gate and line reader (the mixins' state is among these slots).
    __slots__ = (
        "_buffer", "_discarding", "_drain_handle", "_exchange", "_forwarded", "_fragments", "_head_tail", "_held",
        "_http", "_loop", "_message_is_text", "_opcode", "_pending", "_probe", "_proxied", "_server", "_socket_ip",
        "_tat", "_timer", "_ws", "stopped",
    )  # fmt: skip  # the rest are OutboxProtocol's
    transport_name = "websocket"

    def __init__(self, server: Server, http: HttpResponder, flusher: Flusher,
                 forwarded: ForwardedAddresses | None = None) -> None:
        self.server = server
        # Its place among the connections that are not clients yet, until it becomes one or goes.
        self._pending: PendingConnection | None = None
        self._forwarded = forwarded if forwarded is not None else ForwardedAddresses(server)
        self._socket_ip = "?"  # the TCP peer; peer_ip is the client's, which a trusted proxy's headers tell
        self._proxied = False
        self._flusher = flusher
        self.peer_ip = "?"
        self.client: Client | None = None
        self._http = http
        self._loop = asyncio.get_running_loop()
        config = server.config
        # The library's protocol for the handshake; a FrameLayer once the connection is open.
        self._ws: ServerProtocol | FrameLayer = ServerProtocol(
            subprotocols=list(_SUBPROTOCOLS),
            select_subprotocol=_select_subprotocol,
            max_size=hard_message_limit(config),
        )
        self._start_gate(server, self._loop)
        self._buffer = b""
        self._discarding = False
        self._max_sendq = config.max_sendq_bytes  # read once: write() is on the fanout path
        self._opcode = OP_TEXT
        # The payload of a fragmented message so far: one buffer, at most the message size limit whatever
        # the number of frames (a list of them held an entry even for an empty one).
        self._fragments: bytearray | None = None
        self._message_is_text = True  # the opcode of the message whose frames are arriving
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The last bytes of the HTTP request's head seen so far, until its end (a blank line) is found:
        # see data_received. None from then on.
        self._head_tail: bytes | None = b""
        # The first bytes while they cannot tell yet whether the request is an upload (POST), which has a
        # body the WebSocket library's parser refuses: salotto.transport.files reads those. None after.
        self._probe: bytes | None = b""
        # An upload or a file download that took the connection over (salotto.transport.files).
        self._exchange: Upload | Download | None = None
        self.outbox: list[bytes] = IDLE  # a list only while this pass has output (mark_pending)
        self._closing = False
        self._lost_reason: str | None = None

    def _stop_input(self) -> None:
        self.stop()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.peer_ip = self._socket_ip = prepare_socket(transport)
        self._proxied = self._forwarded.trusted(self._socket_ip)
        admitted = self.server.admit_pending(self._socket_ip, per_ip_cap=not self._proxied)
        if isinstance(admitted, str):
            log.info("refused web connection from %s: %s", self.peer_ip, admitted)
            self._closing = True
            transport.write(_busy_response(admitted))  # type: ignore[attr-defined]
            transport.close()
            return
        self._pending = admitted
        self._timer = self._loop.call_later(HANDSHAKE_TIMEOUT_S, self._drop)

    def _done_pending(self) -> None:
        if self._pending is not None:
            self._pending.release()
            self._pending = None

    def data_received(self, data: bytes) -> None:
        if self._closing and self.client is None:
            return  # refused at once (or closed): what it sends is not read
        if self.client is not None:
            self.server.stats.bytes_in += len(data)
        exchange = self._exchange
        if exchange is not None:
            if isinstance(exchange, Upload):
                exchange.data_received(data)
            return  # a download reads nothing more
        probe = self._probe
        if probe is not None:
            probe += data
            if len(probe) < len(_POST) and _POST.startswith(probe):
                self._probe = probe
                return
            self._probe = None
            data = probe
            files = self._http.files
            if probe.startswith(_POST) and self._transport is not None:
                if files is not None:
                    self._start_upload(files, self._transport, data)
                else:  # no request with a body is understood here
                    self._closing = True
                    off = "File uploads are off on this server (uploads = false).\n"
                    self._transport.write(text_response(405, off, [("Allow", "GET, HEAD")]))
                    self._transport.close()
                return
        seen = self._head_tail
        if seen is not None:
            # The request's head goes to the parser on its own, so that when the handshake is over
            # (_on_request) nothing of the first frame has been parsed yet: see _on_request.
            end = (seen + data).find(b"\r\n\r\n")
            if end < 0:
                self._head_tail = (seen + data)[-3:]
            else:
                self._head_tail = None
                cut = end + 4 - len(seen)
                self._receive(data[:cut])
                data = data[cut:]
                if not data or (self._closing and self.client is None):
                    return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, Frame) and self.client is not None and not self._closing:
                self._on_frame(self.client, event)
        self._send_pending()

    def _start_upload(self, files: FileService, transport: asyncio.Transport, data: bytes) -> None:
        if self._timer is not None:  # the upload has its own deadline (upload_timeout_s)
            self._timer.cancel()
            self._timer = None
        self._head_tail = None
        upload = self._exchange = Upload(files, transport, self.peer_ip, self._upload_client)
        upload.data_received(data)

    def _upload_client(self, request: Request) -> str | None:
        """The upload's client address: the socket's, or what a trusted proxy's headers say."""
        if self._proxied:
            client_ip = self._forwarded.client(self._socket_ip, request, upgrade=False)
            if client_ip is not None:
                self.peer_ip = client_ip
            return client_ip
        return self.peer_ip

    def pause_writing(self) -> None:
        if isinstance(self._exchange, Download):
            self._exchange.pause_writing()

    def resume_writing(self) -> None:
        if isinstance(self._exchange, Download):
            self._exchange.resume_writing()

    def eof_received(self) -> bool | None:
        exchange = self._exchange
        if exchange is not None:
            # A client may shut its side once its request is sent: the answer, still to come, goes out.
            return exchange.eof_received()
        self._ws.receive_eof()
        self._send_pending()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._done_pending()
        exchange = self._exchange
        if exchange is not None:
            if isinstance(exchange, Upload):
                exchange.connection_lost()
            else:
                exchange.close()
        self._closing = True
        self.stop()
        if self._timer is not None:
            self._timer.cancel()
        if self.client is None:
            return
        if self._lost_reason is not None:
            reason = self._lost_reason
        elif isinstance(self._ws.parser_exc, PayloadTooBig):
            reason = "Connection error: WebSocket message too big"
        elif exc is not None:
            reason = f"Connection error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else 'reset'}"
        else:
            reason = "Connection closed"
        self.server.connection_lost(self.client, reason)

    # -- handshake -------------------------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        ws = self._ws
        assert isinstance(ws, ServerProtocol)  # requests come during the handshake only
        upgrade = _is_upgrade(request)
        if self._proxied:
            client_ip = self._forwarded.client(self._socket_ip, request, upgrade=upgrade)
            if client_ip is None:
                ws.send_response(ws.reject(400, "The proxy's forwarding headers (Forwarded, X-Forwarded-For) "
                                                "don't name the client.\n"))
                return
            self.peer_ip = client_ip
        if not upgrade:
            files = self._http.files
            if files is not None and request.path.startswith(FILES_PREFIX) and self._transport is not None:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                download = self._exchange = Download(files, self._transport, request, self.peer_ip)
                download.start()
                return
            ws.send_response(self._http.respond(request))
            return
        if not self._http.origin_allowed(request):
            log.info("refused WebSocket from %s: Origin %r not allowed", self.peer_ip,
                     request.headers.get_all("Origin"))
            ws.send_response(ws.reject(403, "This Origin may not open the IRC WebSocket.\n"))
            return
        response = ws.accept(request)
        ws.send_response(response)
        if response.status_code != 101:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ws.subprotocol == SUBPROTOCOL_BINARY:
            self._opcode = OP_BINARY
        # The frames from here on are FrameLayer's: the library's protocol object, its generators (the
        # request's head among what they hold) and buffers took some 3 KiB per connection for the whole
        # connection. It has parsed the request and nothing after it (data_received fed the head alone),
        # so nothing of the first frame is lost.
        self._send_pending()  # the 101 goes out before any IRC line
        self._ws = FrameLayer(ws.max_message_size or hard_message_limit(self.server.config))
        self._done_pending()  # an IRC client now: counted with the others
        self.client = self.server.accept(self)

    # -- frames in -------------------------------------------------------------------------------

    def _on_frame(self, client: Client, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is OP_TEXT or opcode is OP_BINARY or opcode is OP_CONT:
            if opcode is not OP_CONT:
                self._message_is_text = opcode is OP_TEXT
            fragments = self._fragments
            if not frame.fin:
                if fragments is None:
                    fragments = self._fragments = bytearray()
                fragments += frame.data  # FrameLayer bounds the total size
                return
            payload = bytes(frame.data)
            if fragments is not None:
                fragments += payload
                payload = bytes(fragments)
                self._fragments = None
            if self._message_is_text and not payload.isascii() and not _is_utf8(payload):
                self._fail(CloseCode.INVALID_DATA, "Invalid UTF-8 in a text message")
                return
            # The message is one line; the LF we add ends it so the reader returns it now.
            self.push(client, self.feed(payload + b"\n"))
        elif opcode is OP_CLOSE:
            self.stop()
        # Ping frames are answered by FrameLayer; pongs need nothing.

    def _fail(self, code: CloseCode, reason: str) -> None:
        """RFC 6455 section 7.1.7: close with ``code``; nothing more reaches the server from this client."""
        self.stop()
        self._lost_reason = f"Connection error: {reason}"
        if self._ws.state is State.OPEN:
            self._ws.fail(code, reason)
        self._send_pending()

    def _send_pending(self) -> None:
        """Write what the WebSocket core queued (handshake answers, pongs, close frames, EOF). It counts
        against the send queue as IRC lines do: a peer that sends pings and never reads is dropped, not
        buffered for (a pong per ping, registered or not)."""
        transport = self._transport
        if transport is None:
            return
        chunks = self._ws.data_to_send()
        ends = next((i for i, data in enumerate(chunks) if data is SEND_EOF or not data), None)
        if ends is not None:
            chunks = chunks[:ends]
        # One write for all of them (a burst of pings queues a pong each): one call into the transport.
        written = 0
        if chunks and not transport.is_closing():
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            transport.write(data)
            written = len(data)
        if ends is not None:
            transport.close()  # flushes, then closes
            return
        if written and not self._closing and transport.get_write_buffer_size() > self._max_sendq:
            self._sendq_exceeded()
            return
        if self._ws.close_expected() and self._timer is None:
            self._timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._drop)

    def _drop(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    # -- salotto.server.client.Connection ---------------------------------------------------------

    def flush_now(self) -> None:
        """Frame what this loop pass wrote, one message per line, in one write (the Flusher calls it)."""
        data = self._take_output()
        transport = self._transport
        if data is None or transport is None or self._ws.state is not State.OPEN:
            return
        opcode = self._opcode
        frames = []
        for line in data.split(b"\n"):
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                continue
            if opcode == OP_TEXT and not line.isascii():
                line = line.decode("utf-8", "replace").encode()  # a text frame must hold UTF-8
            frames.append(encode_frame(opcode, line))
        wire = b"".join(frames)
        transport.write(wire)
        self._check_sendq(transport, len(wire))

    def close(self, reason: str) -> None:
        if self._closing:
            return
        self.server.commit_pending()  # nothing leaves before it is durable
        self.flush_now()
        self._closing = True
        self.stop()
        if self._ws.state is State.OPEN:
            self._ws.send_close(CloseCode.NORMAL_CLOSURE)
        self._send_pending()


def make_factory(server: Server, http: HttpResponder, flusher: Flusher) -> Callable[[], WebSocketIrcProtocol]:
    """A protocol factory for ``loop.create_server``."""
    forwarded = ForwardedAddresses(server)

    def factory() -> WebSocketIrcProtocol:
        return WebSocketIrcProtocol(server, http, flusher, forwarded)

    return factory
