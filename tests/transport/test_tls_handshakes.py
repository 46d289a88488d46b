"""TLS listeners (IRC's tls_listen, the web port's web_tls_listen) count a connection as soon as it is
accepted, before its handshake: per address, in all and against the open-files budget, with the web port's
requests. Past a cap it is closed at once and logged; a handshake that fails, times out or loses its peer
is closed, logged at debug level, and gives its place back exactly once. Under uvloop (as ``salotto
serve`` runs) and asyncio's own loop: their TLS layers differ in when they read."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salotto.config import load_config
from salotto.server.state import Server
from salotto.transport import tls
from salotto.transport.tls import ServerCertificate, TlsHandshakes
from tests.irc_client import RawClient
from tests.tls_certs import client_context, make_certificate, needs_openssl
from tests.transport.inprocess import GENEROUS_S, InProcessServer, read_until_closed, serve_in_process, wait_until
from tests.web.conftest import free_port

pytestmark = needs_openssl

LOOPS = pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
WHAT = {"tls_listen": "tls", "web_tls_listen": "https"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    yield make_certificate(tmp_path_factory.mktemp("tls-handshakes"), "handshakes")


def serve_tls(body: Callable[[InProcessServer, int], None], certificate: tuple[Path, Path], event_loop: str,
              listener: str = "tls_listen", **overrides: Any) -> None:
    port = free_port()
    serve_in_process(lambda srv: body(srv, port), {
        listener: [f"127.0.0.1:{port}"], "tls_cert_file": str(certificate[0]), "tls_key_file": str(certificate[1]),
        **overrides,
    }, event_loop=event_loop)


def idle(port: int, source: str) -> socket.socket:
    """A TCP connection to the TLS port that never says hello."""
    return socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S, source_address=(source, 0))


def closed_at_once(sock: socket.socket, wait_s: float = 0.3) -> bool:
    sock.settimeout(wait_s)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def pending_is(srv: InProcessServer, total: int) -> Callable[[], bool]:
    return lambda: srv.server.pending.total == total


def tls_works(port: int, listener: str, certificate: tuple[Path, Path], source: str, nick: str) -> None:
    """A real TLS client gets through: it registers (IRC) or gets /healthz (web)."""
    context = client_context(certificate[0])
    if listener == "tls_listen":
        client = RawClient("127.0.0.1", port, GENEROUS_S, tls=context, source=source)
        client.register(nick)
        client.expect("366")
        client.close()
        return
    conn = http.client.HTTPSConnection("localhost", port, timeout=GENEROUS_S, context=context,
                                       source_address=(source, 0))
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


@LOOPS
@pytest.mark.parametrize("listener", ["tls_listen", "web_tls_listen"])
def test_handshakes_in_progress_are_capped_per_address_and_in_all(
    certificate: tuple[Path, Path], event_loop: str, listener: str
) -> None:
    def body(srv: InProcessServer, port: int) -> None:
        held = [idle(port, "127.0.0.2") for _ in range(3)]
        wait_until(pending_is(srv, 3), what="three handshakes counted")
        assert not any(closed_at_once(sock) for sock in held)
        assert closed_at_once(idle(port, "127.0.0.2"), GENEROUS_S)  # a fourth from that address
        srv.wait_log(f"refused connection from 127.0.0.2 ({WHAT[listener]}) before its TLS handshake: "
                     "Too many connections from your address (max_pending_connections_per_ip)")
        held += [idle(port, "127.0.0.3"), idle(port, "127.0.0.4")]
        wait_until(pending_is(srv, 5), what="five handshakes counted")
        assert closed_at_once(idle(port, "127.0.0.5"), GENEROUS_S)  # a sixth in all
        srv.wait_log("Too many connections waiting to become clients (max_pending_connections)")
        assert srv.server.stats.connections_refused == 2
        # The plaintext port is another door, with its own limits: not held up.
        srv.client().register("plain")
        for sock in held:
            sock.close()
        wait_until(lambda: srv.server.pending.total == 0 and not srv.server.pending.per_key,
                   what="every handshake's place given back")
        tls_works(port, listener, certificate, "127.0.0.2", "secure")
        wait_until(pending_is(srv, 0), what="nothing pending once the client is in (or its request answered)")

    serve_tls(body, certificate, event_loop, listener, max_pending_connections_per_ip=3, max_pending_connections=5)


@LOOPS
def test_handshakes_count_against_the_open_files_budget(certificate: tuple[Path, Path], event_loop: str) -> None:
    """Idle sockets to the TLS port used to take descriptors no count saw, until the process had none left
    and a plaintext client got a reset: now they are refused at the budget, and so is the plaintext client,
    with an ERROR that says why, until they go."""

    def body(srv: InProcessServer, port: int) -> None:
        srv.server.fd_budget = 2
        held = [idle(port, "127.0.0.2"), idle(port, "127.0.0.3")]
        wait_until(pending_is(srv, 2), what="two handshakes counted")
        assert closed_at_once(idle(port, "127.0.0.4"), GENEROUS_S)
        srv.wait_log("refused connection from 127.0.0.4 (tls) before its TLS handshake: "
                     "Server is full (open-files limit)")
        plain = srv.client()
        assert any("Server is full (open-files limit)" in line for line in read_until_closed(plain))
        assert srv.server.stats.descriptor_refusals == 2
        for sock in held:
            sock.close()
        wait_until(pending_is(srv, 0), what="the handshakes' places given back")
        srv.client().register("plain")

    serve_tls(body, certificate, event_loop)


@LOOPS
def test_failed_timed_out_and_abandoned_handshakes_are_closed_and_give_their_place_back(
    certificate: tuple[Path, Path], event_loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "TLS_HANDSHAKE_TIMEOUT_S", 1.0)

    def body(srv: InProcessServer, port: int) -> None:
        silent = idle(port, "127.0.0.2")
        gone = idle(port, "127.0.0.4")
        gone.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then the client leaves
        wait_until(pending_is(srv, 2), what="two handshakes counted")
        gone.close()
        plaintext = idle(port, "127.0.0.3")
        plaintext.sendall(b"NICK wrongport\r\nUSER a 0 * :a\r\n")  # IRC without TLS: not a ClientHello
        for sock in (plaintext, silent):
            assert closed_at_once(sock, GENEROUS_S)
        wait_until(lambda: srv.server.pending.total == 0 and not srv.server.pending.per_key,
                   what="every place given back")
        failures = {r.getMessage().split()[3]: r for r in list(srv.records) if "TLS handshake with" in r.getMessage()}
        assert set(failures) == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}, srv.log_lines()[-10:]
        assert all(r.levelno == logging.DEBUG for r in failures.values())
        assert "taking longer than 1.0 seconds" in failures["127.0.0.2"].getMessage()
        tls_works(port, "tls_listen", certificate, "127.0.0.2", "after")
        assert srv.server.pending.total == 0

    serve_tls(body, certificate, event_loop)


@LOOPS
def test_a_client_hello_already_waiting_when_the_connection_is_accepted_is_not_lost(
    certificate: tuple[Path, Path], event_loop: str
) -> None:
    """uvloop starts reading a new connection once connection_made returns, paused or not: a ClientHello
    already in the socket is read before start_tls has put its TLS layer in, and must reach it."""

    def body(srv: InProcessServer, port: int) -> None:
        assert srv.loop is not None
        srv.loop.call_soon_threadsafe(time.sleep, 0.5)  # the server is busy while the clients connect
        time.sleep(0.05)
        clients = [threading.Thread(target=tls_works, args=(port, "tls_listen", certificate, f"127.0.0.{i}", f"c{i}"))
                   for i in range(2, 5)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(GENEROUS_S)
        assert {record.getMessage() for record in srv.records if "registered" in record.getMessage()} == {
            f"registered c{i}!~c{i}@127.0.0.{i} (tls)" for i in range(2, 5)}

    serve_tls(body, certificate, event_loop)


def _handshake_then_send_with_finished(port: int, context: ssl.SSLContext, data: bytes) -> tuple[socket.socket, Any]:
    """A TLS client whose last handshake message (its Finished) goes out in one write with ``data``,
    as a client that writes at once after its handshake may send them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            tls_object.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            received = sock.recv(65536)
            assert received, "the server closed during the handshake"
            incoming.write(received)
    tls_object.write(data)
    sock.sendall(outgoing.read())  # Finished and the first lines together
    return sock, (tls_object, incoming)


@LOOPS
def test_lines_sent_with_the_clients_last_handshake_message_are_not_lost(
    certificate: tuple[Path, Path], event_loop: str
) -> None:
    def body(srv: InProcessServer, port: int) -> None:
        for attempt in range(5):
            sock, (tls_object, incoming) = _handshake_then_send_with_finished(
                port, client_context(certificate[0]), f"NICK eager{attempt}\r\nUSER e 0 * :e\r\n".encode())
            received = b""
            deadline = time.monotonic() + GENEROUS_S
            while b" 001 " not in received:
                assert time.monotonic() < deadline, f"no welcome; got {received[-300:]!r}"
                try:
                    received += tls_object.read(65536)
                except ssl.SSLWantReadError:
                    incoming.write(sock.recv(65536))
            sock.close()

    serve_tls(body, certificate, event_loop)


@LOOPS
def test_a_connection_lost_before_its_handshake_starts_gives_its_place_back_once(
    certificate: tuple[Path, Path], event_loop: str
) -> None:
    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.paused = self.aborted = False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return ("192.0.2.1", 4711) if name == "peername" else default

        def pause_reading(self) -> None:
            self.paused = True

        def is_closing(self) -> bool:
            return self.aborted

        def abort(self) -> None:
            self.aborted = True

    async def main() -> None:
        config = load_config(None, {"tls_listen": ["127.0.0.1:0"], "tls_cert_file": str(certificate[0]),
                                    "tls_key_file": str(certificate[1])})
        server = Server(config)
        handshakes = TlsHandshakes(server, ServerCertificate(config), "tls")
        protocol = handshakes.factory(lambda: pytest.fail("no handshake, no client"))()
        transport = Transport()
        protocol.connection_made(transport)
        assert server.pending.total == 1 and transport.paused
        protocol.connection_lost(ConnectionResetError())  # before the loop ran the handshake
        assert server.pending.total == 0
        await asyncio.sleep(0.05)  # the handshake's task sees the connection gone
        assert server.pending.total == 0 and server.pending.per_key == {}

    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
