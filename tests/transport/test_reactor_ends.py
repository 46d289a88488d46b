"""The ends of connections on the reactor (salotto.transport.reactor) when the network is slow: what the
kernel did not take yet waits in the connection's own buffer, and must still reach a client that has
finished sending. Servers run in this process; a small kernel send buffer on the server's side of the
connection stands in for a slow link."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import pytest

from tests.transport.inprocess import GENEROUS_S, InProcessServer, serve_in_process, wait_until
from tests.web.conftest import free_port

# The kernel buffers of a slow link: the server's send buffer and the client's receive buffer.
SMALL_BUFFER = 4096


def _server_side(client: socket.socket) -> socket.socket:
    """A duplicate of the server's socket for ``client``'s connection (the server runs in this process)."""
    mine = client.getsockname()
    deadline = time.monotonic() + GENEROUS_S
    while time.monotonic() < deadline:
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                fd = int(name)
                if fd == client.fileno():
                    continue
                dup = socket.fromfd(fd, client.family, socket.SOCK_STREAM)
                try:
                    if dup.getpeername() == mine:
                        return dup
                except OSError:
                    pass
                dup.close()
        time.sleep(0.01)
    raise AssertionError(f"no server socket for {mine}")


def _slow_client(host: str, port: int) -> socket.socket:
    """A client socket with a small receive buffer whose server side has a small send buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.settimeout(GENEROUS_S)
    sock.connect((host, port))
    with _server_side(sock) as server_side:
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_a_client_that_half_closes_gets_every_answer_even_those_still_queued(event_loop: str) -> None:
    """``… | nc -N``: the client sends its commands, then EOF, and reads. Answers the kernel could not
    take yet wait in the server's buffer: they are sent before the server closes, not dropped at the EOF
    (as asyncio's transports did before)."""
    count = 1200

    def body(srv: InProcessServer) -> None:
        sock = _slow_client(srv.host, srv.port)
        sock.sendall(b"NICK bulk\r\nUSER b 0 * :bulk\r\n")
        srv.wait_log("registered bulk")
        lines = b"".join(b"PING :%04d%s\r\n" % (i, b"x" * 400) for i in range(count))  # 500 KiB of PONG
        before = srv.server.stats.bytes_in
        sock.sendall(lines)
        wait_until(lambda: srv.server.stats.bytes_in >= before + len(lines), what="the PINGs read")
        time.sleep(0.1)  # answered, most of it queued
        sock.shutdown(socket.SHUT_WR)
        received = _read_to_end(sock)
        sock.close()
        pongs = received.count(b" PONG ")
        assert pongs == count, f"{pongs} of {count} PONGs"

    serve_in_process(body, {"flood_burst_lines": 2 * count, "flood_max_queued_lines": 2 * count},
                     event_loop=event_loop)


def test_a_web_client_that_half_closes_after_its_request_gets_the_whole_file() -> None:
    """An HTTP/1.0 client that ends its side after the request (``nc -N``, some scripts) gets the whole
    body on a slow link, not what the kernel had taken when its EOF was read."""
    port = free_port()

    def body(srv: InProcessServer) -> None:
        sock = _slow_client("127.0.0.1", port)
        sock.sendall(b"GET /model.js HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = _read_to_end(sock)
        sock.close()
        head, _, content = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        assert length > 4 * SMALL_BUFFER
        assert len(content) == length, f"{len(content)} of {length} bytes"

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def test_answers_sent_at_a_client_eof_are_durable_first() -> None:
    """The server sends nothing its history could still lose in a crash (Server.commit_pending before any
    write): the echo of a message that a client sent just before its EOF leaves only once the message is
    in the journal, even while group commit holds output back (history_commit_interval_s)."""

    def body(srv: InProcessServer) -> None:
        history = srv.server.history
        assert history is not None
        client = srv.client()
        client.register("durable", caps=["echo-message"])
        client.expect("366", p1="#lobby")
        client.send("PRIVMSG #lobby :first")  # committed at once: the next commit waits for the interval
        client.expect("PRIVMSG", p1="first")
        client.send("PRIVMSG #lobby :second")
        client.sock.shutdown(socket.SHUT_WR)
        echo = client.expect("PRIVMSG", p1="second")
        uncommitted = [m for m in list(history.pending) if "second" in repr(m)]
        assert not uncommitted, f"{echo} was sent before the message was durable"
        client.close()

    serve_in_process(body, {"history_commit_interval_s": 3.0})
