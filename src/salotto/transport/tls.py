"""TLS on the IRC and web ports: the server's certificate, re-read without a restart (certbot renews the
files in place), and the handshake of each new connection, counted before it starts.

The TLS listeners listen on plain TCP. A new connection is counted at once among the connections that are
not clients yet (:meth:`Server.admit_pending <salotto.server.state.Server.admit_pending>`: per address,
in all, and against the open-files budget) and closed at once past a cap; otherwise
:class:`TlsHandshakes` runs its handshake (``loop.start_tls``, at most :data:`TLS_HANDSHAKE_TIMEOUT_S`)
and hands the TLS transport to the port's protocol, which sees a client like any other. (With
``create_server(ssl=...)`` a connection reaches the server only once its handshake is over: until then
it escaped every limit, and idle sockets could take the process's last descriptors.)

Each handshake gets the newest certificate: a reload loads the files into a fresh
:class:`ssl.SSLContext`, and nothing changes if they cannot be loaded (missing, unreadable, a key that
does not match), so a failed renewal keeps the certificate in use. Connections already open keep the
one they started with.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
from collections.abc import Callable

from salotto.config import Config, bad_value
from salotto.server.pending import PendingConnection
from salotto.server.state import Server
from salotto.transport.forwarded import is_trusted
from salotto.transport.inbound import prepare_socket

__all__ = ["TLS_HANDSHAKE_TIMEOUT_S", "ServerCertificate", "TlsHandshakes", "load_context"]

log = logging.getLogger("salotto")

# Seconds a new connection has to finish its TLS handshake (asyncio's default is 60 s: a peer that
# opens connections and never says hello would hold each that long).
TLS_HANDSHAKE_TIMEOUT_S = 15.0

# OpenSSL's errors end in " (_ssl.c:3926)": where in CPython, nothing the reader can use.
_SOURCE_LINE = re.compile(r" \(_ssl\.c:\d+\)$")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_context(config: Config, *, renewing: bool = False) -> ssl.SSLContext:
    """A server-side context holding ``tls_cert_file`` and ``tls_key_file``; ConfigError saying why not."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _SOURCE_LINE.sub("", str(exc))
        if renewing:
            why += "; new connections still get the certificate loaded before"
        raise bad_value("tls_cert_file", config.tls_cert_file, f"with tls_key_file {config.tls_key_file!r}: {why}",
                        config.origin("tls_cert_file")) from None
    return context


def fingerprint(path: str) -> str:
    """SHA-256 of the first certificate in a PEM file, as ``ab:cd:...`` (what ``openssl x509 -fingerprint``
    shows), or ``?`` when the file cannot be read: for the log, to see which certificate is in use."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            match = _PEM_CERTIFICATE.search(f.read())
        if match is None:
            return "?"
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group(0))).hexdigest()
    except (OSError, ValueError):
        return "?"
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


class ServerCertificate:
    """The certificate every TLS listener presents (:attr:`context`: the newest); :meth:`load` then
    :meth:`use` renew it.

    Raises ConfigError (from the constructor) when the files cannot be loaded at start.
    """

    def __init__(self, config: Config) -> None:
        self.context = load_context(config)
        self.fingerprint = fingerprint(config.tls_cert_file)
        log.info("TLS certificate from %s: SHA-256 %s", config.tls_cert_file, self.fingerprint)

    def load(self, config: Config) -> ssl.SSLContext:
        """Read the files again, without using them yet; ConfigError when they cannot be loaded."""
        return load_context(config, renewing=True)

    def use(self, context: ssl.SSLContext, config: Config) -> None:
        """New handshakes get ``context`` from now on; open connections keep theirs."""
        self.context = context
        previous, self.fingerprint = self.fingerprint, fingerprint(config.tls_cert_file)
        if self.fingerprint == previous:
            log.info("TLS certificate re-read from %s: unchanged (SHA-256 %s)", config.tls_cert_file, self.fingerprint)
        else:
            log.info("TLS certificate renewed from %s: new connections get SHA-256 %s (was %s)",
                     config.tls_cert_file, self.fingerprint, previous)


class TlsHandshakes:
    """The handshakes of the connections to the TLS listeners of one kind (``what``: ``tls`` for IRC,
    ``https`` for the web port); :meth:`factory` makes a listener's protocol factory."""

    def __init__(self, server: Server, certificate: ServerCertificate, what: str) -> None:
        self.server = server
        self.certificate = certificate
        self.what = what
        # The handshakes under way (the loop keeps only weak references to its tasks).
        self._tasks: set[asyncio.Task[None]] = set()

    def factory(self, app_factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A factory for ``loop.create_server`` (plain TCP): each connection's handshake, then a protocol
        from ``app_factory`` over TLS, its ``connection_made`` called with the TLS transport."""

        def make() -> asyncio.Protocol:
            return _TlsHandshake(self, app_factory)

        return make

    def _start(self, handshake: _TlsHandshake, transport: asyncio.Transport) -> None:
        task = asyncio.get_running_loop().create_task(handshake.run(transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _TlsHandshake(asyncio.Protocol):
    """A connection to a TLS listener until its handshake is over (the plain TCP transport's protocol
    until ``start_tls`` puts the TLS layer in its place)."""

    __slots__ = ("_app_factory", "_early", "_handshakes", "_ip", "_lost", "_pending", "_transport")

    def __init__(self, handshakes: TlsHandshakes, app_factory: Callable[[], asyncio.Protocol]) -> None:
        self._handshakes = handshakes
        self._app_factory = app_factory
        self._ip = "?"
        self._lost = False
        self._pending: PendingConnection | None = None
        self._transport: asyncio.Transport | None = None
        self._early: list[bytes] = []  # the start of the ClientHello, read before start_tls took over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._ip = ip = prepare_socket(transport)
        handshakes = self._handshakes
        server = handshakes.server
        if transport.get_extra_info("peername") is None:
            self._lost = True  # reset before we got here
            transport.abort()  # type: ignore[attr-defined]
            return
        admitted = server.admit_pending(ip, per_ip_cap=not is_trusted(ip, server.trusted_proxies))
        if isinstance(admitted, str):
            # Nothing can be said before a handshake: the connection is closed, the log says why.
            log.info("refused connection from %s (%s) before its TLS handshake: %s", ip, handshakes.what, admitted)
            transport.abort()  # type: ignore[attr-defined]
            return
        self._pending = admitted
        self._transport = transport  # type: ignore[assignment]
        # Until start_tls puts the TLS layer in, the ClientHello should stay in the socket.
        transport.pause_reading()  # type: ignore[attr-defined]
        handshakes._start(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        # uvloop starts reading once connection_made returns, paused or not: what it read is kept for
        # the TLS layer, and it reads no more until that layer is in place.
        self._early.append(data)
        if self._transport is not None:
            self._transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # a peer that stops sending before its handshake: close

    def connection_lost(self, exc: Exception | None) -> None:
        # Only before start_tls: from then on the TLS layer is the transport's protocol.
        self._lost = True
        self._release()

    def _release(self) -> None:
        if self._pending is not None:
            self._pending.release()

    async def run(self, transport: asyncio.Transport) -> None:
        """The handshake, then the port's protocol over TLS. The connection stops counting as pending when
        the handshake ends, either way, before the port's protocol sees it (it is a client, or pending
        again for the web port's request, in its own right)."""
        handshakes = self._handshakes
        early = _BeforeHandover()
        loop = asyncio.get_running_loop()
        try:
            if self._lost or transport.is_closing():
                return
            if self._early:
                # Runs after start_tls's first step has put the TLS layer in (paused) and before that
                # layer's connection_made starts the handshake, which reads what it was given first.
                loop.call_soon(self._give_early_bytes, transport)
            tls_transport = await loop.start_tls(
                transport, early, handshakes.certificate.context, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
            )
        except Exception as exc:  # failed, timed out, or the peer left: nothing to tell anyone
            log.debug("TLS handshake with %s (%s) failed: %s", self._ip, handshakes.what,
                      _SOURCE_LINE.sub("", str(exc)) or type(exc).__name__)
            transport.abort()
            return
        finally:
            self._release()
        if tls_transport is None or early.lost:
            log.debug("connection from %s (%s) closed at the end of its TLS handshake", self._ip, handshakes.what)
            transport.abort()
            return
        early.hand_over(tls_transport, self._app_factory())

    def _give_early_bytes(self, transport: asyncio.Transport) -> None:
        tls_layer = transport.get_protocol()
        data, self._early = b"".join(self._early), []
        if tls_layer is self or transport.is_closing():
            return  # start_tls failed before it took the transport over
        get_buffer = getattr(tls_layer, "get_buffer", None)
        if get_buffer is None:
            tls_layer.data_received(data)  # type: ignore[attr-defined]
            return
        # asyncio's and uvloop's TLS layers are buffered protocols (uvloop's without the base class).
        view = memoryview(data)
        while view:
            buffer = get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls_layer.buffer_updated(size)  # type: ignore[attr-defined]
            view = view[size:]


class _BeforeHandover(asyncio.Protocol):
    """The TLS transport's protocol from the handshake's end until the port's protocol takes it over.

    asyncio's TLS layer may pass on what arrived with the client's last handshake message (IRC lines sent
    at once) before ``start_tls`` returns; uvloop's, a connection lost meanwhile. What comes in that gap is
    kept and handed over in order."""

    __slots__ = ("_data", "_eof", "_target", "lost")

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._eof = False
        self._target: asyncio.Protocol | None = None
        self.lost = False

    def data_received(self, data: bytes) -> None:
        if self._target is not None:
            self._target.data_received(data)
        else:
            self._data.append(data)

    def eof_received(self) -> bool | None:
        if self._target is not None:
            self._target.eof_received()
        else:
            self._eof = True
        return None  # TLS closes after the peer's close_notify whatever we answer

    def connection_lost(self, exc: Exception | None) -> None:
        # Scheduled with this protocol's method before the handover, run after it: pass it on.
        if self._target is not None:
            self._target.connection_lost(exc)
        else:
            self.lost = True

    def hand_over(self, transport: asyncio.BaseTransport, protocol: asyncio.Protocol) -> None:
        self._target = protocol
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data, self._data = self._data, []
        for chunk in data:
            protocol.data_received(chunk)
        if self._eof:
            protocol.eof_received()
