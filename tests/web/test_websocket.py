"""IRC over WebSocket from a raw client (the websockets library's): subprotocols, framing, Origin,
and the same limits as TCP (line length, flood, send queue). Servers run in this process."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from salotto.proto import parse
from tests.e2e.helpers import wait_for_log
from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, serve_in_process, wait_until
from tests.web.conftest import free_port, start_web_server, stop_web_server

TIMEOUT_S = 10.0


class WsClient:
    """A WebSocket IRC client: one line per message, reads until the message it waits for."""

    def __init__(self, url: str, subprotocols: list[str] | None = ("text.ircv3.net",),  # type: ignore[assignment]
                 origin: str | None = None) -> None:
        self.conn: ClientConnection = connect(
            url, subprotocols=subprotocols, origin=origin, open_timeout=TIMEOUT_S,  # type: ignore[arg-type]
            max_size=2**20,
        ).__enter__()  # closed by close(); the library wants its context manager entered
        self.frames: list[str | bytes] = []

    @property
    def subprotocol(self) -> str | None:
        return self.conn.subprotocol

    def send(self, line: str | bytes | Iterable[str]) -> None:
        self.conn.send(line)

    def recv(self, timeout_s: float = TIMEOUT_S) -> str | bytes:
        frame = self.conn.recv(timeout=timeout_s)
        self.frames.append(frame)
        return frame

    def expect(self, command: str, timeout_s: float = TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            msg = parse(text)
            if msg.command == "PING":
                self.send(f"PONG :{msg.params[-1]}")
            if msg.command == command:
                return msg

    def register(self, nick: str) -> None:
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} on the web")
        self.expect("001")
        self.expect("366")  # autojoined #lobby

    def close(self) -> None:
        self.conn.close()


def serve_web(body: Callable[[InProcessServer, str], None], **overrides: Any) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/irc"
    serve_in_process(lambda srv: body(srv, url), {"web_listen": [f"127.0.0.1:{port}"], **overrides})


def joined_tcp(srv: InProcessServer, nick: str) -> RawClient:
    client = srv.client()
    client.register(nick)
    client.expect("366", p1="#lobby")
    return client


def test_text_subprotocol_chats_with_a_tcp_client_one_line_per_text_frame() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        tcp = joined_tcp(srv, "tcpuser")
        web = WsClient(url, ["text.ircv3.net"])
        assert web.subprotocol == "text.ircv3.net"
        web.register("webuser")
        web.send("PRIVMSG #lobby :hello from the web, ça va?")
        msg = tcp.expect("PRIVMSG")
        assert msg.source is not None and msg.source.startswith("webuser!")
        assert msg.params == ["#lobby", "hello from the web, ça va?"]
        tcp.send("PRIVMSG #lobby :hello from tcp")
        got = web.expect("PRIVMSG")
        assert got.params == ["#lobby", "hello from tcp"]
        # Every frame is text and holds exactly one line, without CRLF.
        assert all(isinstance(f, str) and "\r" not in f and "\n" not in f for f in web.frames)
        assert srv.server.find_user("webuser").conn.transport_name == "websocket"  # type: ignore[union-attr]

    serve_web(body)


def test_binary_subprotocol_sends_binary_frames_and_bytes_as_they_are() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        tcp = joined_tcp(srv, "tcpuser")
        web = WsClient(url, ["binary.ircv3.net"])
        assert web.subprotocol == "binary.ircv3.net"
        web.send(b"NICK binuser")
        web.send(b"USER binuser 0 * :binary")
        web.expect("366")
        tcp.send_raw(b"PRIVMSG #lobby :caf\xc3\xa9 \xf0\x9f\x8d\x95\r\n")
        web.expect("PRIVMSG")
        assert all(isinstance(f, bytes) for f in web.frames)
        last = web.frames[-1]
        assert isinstance(last, bytes) and last.endswith(b" :caf\xc3\xa9 \xf0\x9f\x8d\x95")
        web.send(b"PRIVMSG #lobby :\xc3\xa9t\xc3\xa9")
        assert tcp.expect("PRIVMSG").params[1] == "été"

    serve_web(body)


def test_bytes_that_are_not_utf8_reach_text_clients_as_u_fffd_and_everyone_else_as_sent() -> None:
    """IRCv3 WebSocket: a text frame must hold UTF-8, so bytes from a TCP client that are not UTF-8 reach
    text clients (and clients that named no subprotocol) as U+FFFD; binary.ircv3.net clients and TCP
    clients get the bytes as they were sent (a Latin-1 client's peers see Latin-1)."""

    def body(srv: InProcessServer, url: str) -> None:
        latin1 = joined_tcp(srv, "latin1")
        peer = joined_tcp(srv, "tcppeer")
        plain = WsClient(url, None)
        assert plain.subprotocol is None
        plain.register("plain")
        text = WsClient(url, ["text.ircv3.net"])
        text.register("texty")
        binary = WsClient(url, ["binary.ircv3.net"])
        binary.send(b"NICK binuser")
        binary.send(b"USER binuser 0 * :binary")
        binary.expect("366")
        latin1.send_raw(b"PRIVMSG #lobby :caf\xe9 \xff ok \xc3\xa9t\xc3\xa9\r\n")
        for web in (plain, text):
            assert web.expect("PRIVMSG").params[1] == "caf\ufffd \ufffd ok \u00e9t\u00e9"
            assert all(isinstance(f, str) for f in web.frames)
        binary.expect("PRIVMSG")
        last = binary.frames[-1]
        assert isinstance(last, bytes) and last.endswith(b" :caf\xe9 \xff ok \xc3\xa9t\xc3\xa9")
        peer.expect("PRIVMSG")
        raw = peer._buffer  # what it has read and not split into lines yet: checked as bytes, undecoded
        latin1.send_raw(b"PRIVMSG tcppeer :\xe0 bient\xf4t\r\n")
        deadline = time.monotonic() + TIMEOUT_S
        while b"bient" not in raw and time.monotonic() < deadline:
            peer.sock.settimeout(1.0)
            raw += peer.sock.recv(65536)
        assert b"PRIVMSG tcppeer :\xe0 bient\xf4t\r\n" in raw
        # Stored as text: history gives it back with U+FFFD (the database takes UTF-8 only).
        text.send("CAP REQ :draft/chathistory batch server-time")
        text.expect("CAP")
        text.send("CHATHISTORY LATEST #lobby * 5")
        assert text.expect("PRIVMSG").params[1] == "caf\ufffd \ufffd ok \u00e9t\u00e9"

    serve_web(body)


def test_a_text_frame_that_is_not_utf8_closes_the_connection_with_1007() -> None:
    """RFC 6455 section 8.1: a text message that is not valid UTF-8 fails the connection (1007)."""

    def body(srv: InProcessServer, url: str) -> None:
        tcp = joined_tcp(srv, "tcpuser")
        web = WsClient(url, ["text.ircv3.net"])
        web.register("badtext")
        raw_socket = web.conn.socket
        # A masked text frame by hand (the library would refuse to send invalid UTF-8 as text).
        payload = b"PRIVMSG #lobby :caf\xe9"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        raw_socket.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                web.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        tcp.send("PING :after")
        tcp.expect("PONG")
        assert not any(m.command == "PRIVMSG" and m.params[0] == "#lobby" for m in tcp.received)

    serve_web(body)


def test_frames_ending_in_crlf_and_fragmented_messages_are_accepted() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        tcp = joined_tcp(srv, "tcpuser")
        web = WsClient(url)
        web.send("NICK crlf\r\n")
        web.send("USER crlf 0 * :crlf\n")
        web.expect("366")
        web.send(iter(["PRIVMSG #lobby ", ":in ", "three parts"]))  # one message, three frames
        assert tcp.expect("PRIVMSG").params == ["#lobby", "in three parts"]

    serve_web(body)


def test_too_long_frame_gets_417_and_the_connection_keeps_working() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        tcp = joined_tcp(srv, "tcpuser")
        web = WsClient(url)
        web.register("longwinded")
        web.send("PRIVMSG #lobby :" + "x" * 600)
        assert web.expect("417").params[-1] == "Input line was too long"
        web.send("PING :still-here")
        assert web.expect("PONG").params[-1] == "still-here"
        web.send("PRIVMSG #lobby :short")
        assert tcp.expect("PRIVMSG").params == ["#lobby", "short"]  # the long one never reached anyone
        # 4000 bytes of client tags are within the IRCv3 limit (4094), as over TCP.
        web.send("@+example.org/big=" + "t" * 3982 + " PRIVMSG #lobby :tagged")
        assert tcp.expect("PRIVMSG").params == ["#lobby", "tagged"]

    serve_web(body)


def test_absurdly_large_frame_closes_with_1009() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        web = WsClient(url)
        web.register("huge")
        web.send("PRIVMSG #lobby :" + "x" * 100_000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                web.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        srv.wait_log("disconnected huge")
        assert srv.server.stats.disconnects["error"] == 1

    serve_web(body)


def test_flood_over_websocket_gets_excess_flood() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        witness = joined_tcp(srv, "witness")
        web = WsClient(url)
        web.register("flooder")
        for i in range(30):
            try:
                web.send(f"PING :{i}")
            except ConnectionClosed:
                break  # the server may hang up before the last PINGs are out: that is the point
        error = web.expect("ERROR")
        assert "Excess Flood" in error.params[0]
        quit_msg = witness.expect("QUIT")
        assert quit_msg.params[0] == "Excess Flood"
        with pytest.raises(ConnectionClosed):
            while True:
                web.recv()
        assert srv.server.stats.disconnects["flood"] == 1

    serve_web(body, flood_burst_lines=5, flood_lines_per_s=1, flood_max_queued_lines=10)


def test_moderate_burst_over_websocket_is_delayed_not_dropped() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        web = WsClient(url)
        web.register("bursty")
        time.sleep(0.6)
        started = time.monotonic()
        for i in range(15):
            web.send(f"PING :b{i}")
        assert [web.expect("PONG").params[-1] for _ in range(15)] == [f"b{i}" for i in range(15)]
        assert time.monotonic() - started >= 0.8

    serve_web(body, flood_burst_lines=5, flood_lines_per_s=10, flood_max_queued_lines=20)


def _raw_handshake(port: int, subprotocol: str | None = "text.ircv3.net") -> socket.socket:
    """A socket with a small receive buffer that has sent a WebSocket upgrade request (and reads nothing)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    sock.sendall(
        f"GET /irc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n".encode()
    )
    return sock


def _raw_websocket(port: int, nick: str) -> socket.socket:
    """A WebSocket client that does the handshake and registers, then never reads again."""
    sock = _raw_handshake(port)
    for line in (f"NICK {nick}", f"USER {nick} 0 * :never reads"):
        payload = line.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)
    return sock


def test_websocket_client_that_never_reads_is_dropped_for_sendq() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        port = int(url.split(":")[2].split("/")[0])
        slow = _raw_websocket(port, "slow")
        srv.wait_log("registered slow!")
        sender = joined_tcp(srv, "sender")
        wait_until(lambda: len(srv.server.find_channel("#lobby").members) == 2, what="both in #lobby")  # type: ignore[union-attr]
        text = "x" * 400
        deadline = time.monotonic() + 20
        sent = 0
        while not any("SendQ exceeded" in line for line in srv.log_lines()):
            assert time.monotonic() < deadline, f"no SendQ disconnect after {sent} messages"
            sender.send_raw("".join(f"PRIVMSG #lobby :{sent + i} {text}\r\n" for i in range(200)).encode())
            sent += 200
            time.sleep(0.001)
        assert srv.wait_log("disconnected slow") == "disconnected slow (127.0.0.1): SendQ exceeded"
        sender.send("PING :prompt")
        sender.expect("PONG")
        assert srv.server.stats.disconnects["sendq"] == 1
        slow.close()

    serve_web(body, max_sendq_bytes=4096, flood_burst_lines=1_000_000, flood_lines_per_s=1e6,
              flood_max_queued_lines=1_000_000)


def test_a_ping_flood_that_never_reads_is_dropped_at_the_send_queue_limit() -> None:
    """Pongs count against the send queue like IRC lines: a connection (not even registered) that sends
    ping frames and never reads is dropped once the pongs waiting for it pass max_sendq_bytes, instead of
    the server buffering a pong per ping for ever."""

    def body(srv: InProcessServer, url: str) -> None:
        port = int(url.split(":")[2].split("/")[0])
        sock = _raw_handshake(port, None)
        mask = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as it is
        ping = bytes((0x89, 0x80 | 125)) + mask + b"p" * 125
        burst = ping * 2000  # 262 KB of pings, 250 KB of pongs to answer them
        sent = 0
        with pytest.raises(OSError):  # reset by the server (or its abort seen as a broken pipe)
            while sent < 200_000_000:  # far more than kernel buffers and the send queue hold together
                sock.sendall(burst)
                sent += len(burst)
        assert srv.wait_log("disconnected unregistered") == "disconnected unregistered 127.0.0.1: SendQ exceeded"
        assert sent < 50_000_000, f"{sent} bytes of pings before the drop"
        sock.close()

    serve_web(body, max_sendq_bytes=65536)


def test_origin_check_allows_the_page_and_configured_origins_only() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        port = url.split(":")[2].split("/")[0]
        own = WsClient(url, origin=f"http://127.0.0.1:{port}")
        own.register("own")
        listed = WsClient(url, origin="https://chat.example.org")
        listed.register("listed")
        with pytest.raises(InvalidStatus) as refused:
            WsClient(url, origin="http://evil.example.com")
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            WsClient(url, origin=f"http://127.0.0.1:{int(port) + 1}")  # same host, another port: another origin
        assert srv.server.stats.connections_accepted == 2

    serve_web(body, web_allowed_origins=["https://chat.example.org"])


def test_a_reload_that_takes_an_origin_off_the_list_applies_at_once(tmp_path: Path) -> None:
    """Revoking a site is a reload, not a restart: the next upgrade from it is refused."""
    web = start_web_server(tmp_path, config_text='web_allowed_origins = ["https://chat.example.org"]\n')
    try:
        WsClient(web.ws_url, origin="https://chat.example.org").register("before")
        (tmp_path / "salotto.toml").write_text("web_allowed_origins = []\n")
        web.irc.process.send_signal(signal.SIGHUP)
        wait_for_log(web.irc, "configuration reloaded")
        with pytest.raises(InvalidStatus) as refused:
            WsClient(web.ws_url, origin="https://chat.example.org")
        assert refused.value.response.status_code == 403
    finally:
        stop_web_server(web)


def test_websocket_ping_frames_are_answered() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        web = WsClient(url)
        web.register("pinger")
        assert web.conn.ping(b"are you there").wait(TIMEOUT_S)

    serve_web(body)


def test_connection_limit_counts_websocket_and_tcp_together() -> None:
    def body(srv: InProcessServer, url: str) -> None:
        first = joined_tcp(srv, "first")
        refused = WsClient(url)
        error = refused.expect("ERROR")
        assert "max_connections_per_ip" in error.params[0]
        with pytest.raises(ConnectionClosed):
            while True:
                refused.recv()
        assert srv.server.stats.connections_refused == 1
        first.close()

    serve_web(body, max_connections_per_ip=1)


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_encode_frame_matches_the_library_parser(length: int) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    from salotto.transport.websocket import encode_frame

    payload = bytes(length)
    reader = StreamReader()
    reader.feed_data(encode_frame(Opcode.BINARY, payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:
        raise AssertionError("the frame was incomplete")
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


def test_connections_to_the_web_port_that_are_not_clients_yet_are_capped() -> None:
    """Page loads and handshakes in progress are not IRC clients: max_pending_connections_per_ip and
    max_pending_connections cap them, with a 503, so idle sockets from one address or many cannot pile up."""

    def body(srv: InProcessServer, url: str) -> None:
        port = int(url.split(":")[2].split("/")[0])

        def idle(source: str) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0))
            return sock

        def refused(sock: socket.socket) -> bool:
            sock.settimeout(0.5)
            try:
                return sock.recv(100).startswith(b"HTTP/1.1 503")
            except TimeoutError:
                return False

        held = [idle("127.0.0.2") for _ in range(3)]
        assert not any(refused(sock) for sock in held)
        fourth = idle("127.0.0.2")
        assert refused(fourth)
        other = [idle("127.0.0.3"), idle("127.0.0.4")]
        assert not any(refused(sock) for sock in other)
        assert refused(idle("127.0.0.5"))  # five pending in all: max_pending_connections
        held.pop().close()
        wait_until(lambda: not refused(idle("127.0.0.2")), what="room again once one left")
        # One that becomes an IRC client leaves the count: the web page keeps working for the others.
        for sock in held + other:
            sock.close()
        web = WsClient(url)
        web.register("fine")

    serve_web(body, max_pending_connections_per_ip=3, max_pending_connections=5)
