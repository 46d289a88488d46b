"""The frames of an open WebSocket connection (salotto.transport.wsframes) from a raw client: what RFC 6455
section 5 forbids gets close code 1002 and the end of the connection, a client's close is answered with
its code. The library's client would not send the broken frames. Servers run in this process."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

import pytest

from tests.transport.inprocess import GENEROUS_S, InProcessServer, serve_in_process
from tests.web.conftest import free_port, masked_frame


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GENEROUS_S)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /irc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                 f"Sec-WebSocket-Protocol: text.ircv3.net\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    received = b""
    deadline = time.monotonic() + GENEROUS_S
    while chunk := sock.recv(65536):
        received += chunk
        assert time.monotonic() < deadline, "the server did not close the connection"
    return received


def _close_code(received: bytes) -> int:
    """The code of the last frame, a close frame (0x88, a length under 126, two bytes of code)."""
    at = received.rfind(b"\x88")
    assert at >= 0, f"no close frame in {received[-100:]!r}"
    return int(struct.unpack("!H", received[at + 2:at + 4])[0])


_FORBIDDEN = [
    (bytes((0x81, 5)) + b"NICK ", "a client frame without a mask"),
    (masked_frame(b"NICK x", 0xC1), "a reserved bit set (no extension was agreed)"),
    (masked_frame(b"NICK x", 0x80), "a continuation frame with no message begun"),
    (masked_frame(b"ping", 0x09), "a fragmented control frame"),
    (masked_frame(b"x", 0x83), "an unknown opcode"),
    (masked_frame(b"\x03", 0x88), "a close frame of one byte (a code is two)"),
    (masked_frame(struct.pack("!H", 1005), 0x88), "a close code that no frame may carry (RFC 6455 7.4.1)"),
    (masked_frame(struct.pack("!H", 999), 0x88), "a close code below the defined range"),
]


@pytest.mark.parametrize(("frame", "why"), _FORBIDDEN, ids=[why for _, why in _FORBIDDEN])
def test_a_frame_rfc_6455_forbids_gets_1002_and_the_end(frame: bytes, why: str) -> None:
    port = free_port()

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        sock.sendall(masked_frame(b"NICK broken") + masked_frame(b"USER b 0 * :b"))
        srv.wait_log("registered broken")
        sock.sendall(frame)
        assert _close_code(_until_closed(sock)) == 1002, why
        sock.close()
        srv.wait_log("disconnected broken")

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def test_a_clients_close_is_answered_with_its_code_and_the_connection_ends() -> None:
    port = free_port()

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        sock.sendall(masked_frame(b"NICK leaving") + masked_frame(b"USER l 0 * :l"))
        srv.wait_log("registered leaving")
        sock.sendall(masked_frame(struct.pack("!H", 1001) + b"going away", 0x88))
        assert _close_code(_until_closed(sock)) == 1001
        sock.close()
        srv.wait_log("disconnected leaving")

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def test_a_close_reason_that_is_not_utf8_gets_1007() -> None:
    port = free_port()

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        sock.sendall(masked_frame(b"NICK mojibake") + masked_frame(b"USER m 0 * :m"))
        srv.wait_log("registered mojibake")
        sock.sendall(masked_frame(struct.pack("!H", 1000) + b"\xff\xfe", 0x88))
        assert _close_code(_until_closed(sock)) == 1007
        sock.close()
        srv.wait_log("disconnected mojibake")

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    deadline = time.monotonic() + GENEROUS_S
    while marker not in received:
        assert time.monotonic() < deadline, f"no {marker!r}: {received[-200:]!r}"
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {received[-200:]!r}"
        received += chunk
    return received


def test_a_fragmented_message_whose_frames_arrive_in_pieces_is_one_line() -> None:
    """Each frame's header reaches the server before its payload (and the header itself in two reads):
    a frame is checked once, not once per read, so neither the first fragment is taken for a new message
    nor the last for a continuation with no message begun."""
    port = free_port()
    message = [masked_frame(b"NICK ", 0x01), masked_frame(b"pie", 0x00), masked_frame(b"ces", 0x80)]

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for frame in message:
            for piece in (frame[:1], frame[1:4], frame[4:]):
                sock.sendall(piece)
                time.sleep(0.05)
        sock.sendall(masked_frame(b"USER p 0 * :p"))
        srv.wait_log("registered pieces")
        sock.close()

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def test_every_byte_boundary_of_a_fragmented_message_with_a_ping_between() -> None:
    """The same frames cut at every byte, a ping between two fragments: the pong, then the line."""
    port = free_port()
    wire = (masked_frame(b"NICK by", 0x01) + masked_frame(b"hello", 0x89) + masked_frame(b"te", 0x00)
            + masked_frame(b"s", 0x80) + masked_frame(b"USER b 0 * :b"))

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(wire)):
            sock.sendall(wire[i:i + 1])
            time.sleep(0.005)
        assert b"\x8a\x05hello" in _read_until(sock, b"\x8a\x05hello")
        srv.wait_log("registered bytes")
        sock.close()

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_empty_continuation_frames_do_not_grow_the_servers_memory() -> None:
    """A fragmented message of two million empty frames is 0 bytes of payload: what the server holds for it
    stays within the message size limit, not a list entry per frame (17 MB here). A ping between fragments
    tells when the server has read them all. What remains is the allocator keeping the arenas of one read's
    frame objects (some 2 MB for a 64 KiB read of empty frames, the same whatever their number)."""
    port = free_port()
    count = 2_000_000
    empty = bytes((0x00, 0x80)) + b"\0\0\0\0"  # masked with a zero key, no payload
    flood = masked_frame(b"NICK ", 0x01) + empty * count

    def body(srv: InProcessServer) -> None:
        sock = _open(port)
        before = _rss_kib()
        sock.sendall(flood)
        sock.sendall(masked_frame(b"sync", 0x89))
        _read_until(sock, b"\x8a\x04sync")
        grown = _rss_kib() - before
        sock.sendall(masked_frame(b"empty", 0x80) + masked_frame(b"USER e 0 * :e"))
        srv.wait_log("registered empty")
        sock.close()
        assert grown < 6_000, f"the server's memory grew by {grown} KiB for a message of no payload"

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]})
