"""The plain-TCP and plain-web connections on the server's own epoll set (salotto.transport.reactor):
what a client sees when its connection ends, on either event loop, and WebSocket handshakes however
their bytes arrive. Servers run in this process."""

from __future__ import annotations

import base64
import os
import socket
import time

import pytest

from tests.transport.inprocess import GENEROUS_S, InProcessServer, serve_in_process
from tests.web.conftest import free_port, masked_frame


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_a_client_that_writes_after_its_error_line_sees_a_clean_close_not_a_reset(event_loop: str) -> None:
    """After ERROR the server sends FIN and reads (and drops) what the client still sends for a moment:
    closing at once would answer those bytes with a reset, which on a real network can destroy the ERROR
    line and what came before it in flight (on loopback it shows as the reset itself)."""

    def body(srv: InProcessServer) -> None:
        client = srv.client()
        client.register("leaver")
        client.send("QUIT :bye")
        client.expect("ERROR")
        time.sleep(0.2)  # the server has closed its side by now
        client.send("PING :still here?")  # as a client does whose PING timer fired meanwhile
        time.sleep(0.2)
        client.send("PING :and again")  # after a reset this raises (EPIPE / ECONNRESET)
        assert client.sock.recv(100) == b""  # the server's FIN: a clean end
        client.close()

    serve_in_process(body, event_loop=event_loop)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_a_client_that_closes_its_sending_side_gets_the_answers_made_before_it_leaves(event_loop: str) -> None:
    """``printf 'NICK…\r\nUSER…\r\n' | nc -N host port``: the lines, then EOF. As on other IRC servers the
    EOF ends the connection, but what the server had answered by then (the welcome, the autojoin) is sent
    before it closes, not dropped."""

    def body(srv: InProcessServer) -> None:
        sock = socket.create_connection((srv.host, srv.port), timeout=GENEROUS_S)
        sock.sendall(b"NICK halfway\r\nUSER h 0 * :half closed\r\n")
        srv.wait_log("registered halfway")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        sock.close()
        assert b" 001 halfway " in received
        assert b" 366 halfway #lobby " in received
        assert srv.wait_log("disconnected halfway").endswith("Connection closed")

    serve_in_process(body, event_loop=event_loop)


def test_a_server_closes_at_once_when_the_client_goes_away_mid_answer() -> None:
    """A client that vanishes (reset) while the server has output queued for it is gone for the others at
    once, with the reason, and its descriptor is closed (the server keeps serving)."""

    def body(srv: InProcessServer) -> None:
        watcher = srv.client()
        watcher.register("watcher")
        leaver = srv.client()
        leaver.register("resetter")
        watcher.expect("JOIN")  # the resetter joined #lobby
        leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        leaver.sock.close()  # linger 0: a reset
        quit_line = watcher.expect("QUIT")
        assert quit_line.source is not None and quit_line.source.startswith("resetter!")
        assert quit_line.params[-1] in ("Connection closed", "Connection error: connection reset by peer")
        again = srv.client()
        again.register("resetter")  # the nick is free again

    serve_in_process(body)


def _ws_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /irc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: text.ircv3.net\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n").encode()


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    deadline = time.monotonic() + GENEROUS_S
    while marker not in received:
        assert time.monotonic() < deadline, f"no {marker!r} in {received[-300:]!r}"
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {received[-300:]!r}"
        received += chunk
    return received


@pytest.mark.parametrize("split", ["one packet", "byte by byte around the blank line"])
def test_websocket_frames_right_behind_the_handshake_are_not_lost(split: str) -> None:
    """The request's head goes to the WebSocket library alone and its frame parser takes over after it:
    frames sent in the same packet as the request (or a head cut anywhere) must all arrive."""
    port = free_port()

    def body(srv: InProcessServer) -> None:
        frames = masked_frame(b"NICK pipelined") + masked_frame(b"USER p 0 * :pipelined") + masked_frame(b"JOIN #piped")
        request = _ws_request(port)
        sock = socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if split == "one packet":
            sock.sendall(request + frames)
        else:
            cut = len(request) - 3
            sock.sendall(request[:cut])
            for byte in request[cut:] + frames[:4]:
                time.sleep(0.02)
                sock.sendall(bytes((byte,)))
            sock.sendall(frames[4:])
        received = _read_until(sock, b"366 pipelined #piped")
        assert received.startswith(b"HTTP/1.1 101")
        assert b" 001 pipelined " in received
        sock.close()

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def test_web_connections_refused_on_arrival_give_their_descriptor_back_at_once() -> None:
    """A storm of connections past the pending limits is answered 503 and closed without the linger that
    an established connection gets: forty of them do not hold forty descriptors for CLOSE_LINGER_S."""
    port = free_port()

    def body(srv: InProcessServer) -> None:
        held = [socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S) for _ in range(2)]
        time.sleep(0.2)  # both are pending now: the per-address limit is reached
        baseline = len(os.listdir("/proc/self/fd"))
        refused = [socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S) for _ in range(40)]
        for sock in refused:
            assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 503")
        opened = len(os.listdir("/proc/self/fd")) - baseline  # the test's own 40, and the server's
        time.sleep(0.3)
        server_side = len(os.listdir("/proc/self/fd")) - baseline - len(refused)
        assert server_side <= 2, f"{server_side} server descriptors still open ({opened} right after)"
        for sock in refused + held:
            sock.close()

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"], "max_pending_connections_per_ip": 2})
