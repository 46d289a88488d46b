"""Transport limits seen from a real socket: line length, receive flood, send queue, connection
limits and timers. Each test runs a real server in this process (see ``inprocess.py``)."""

from __future__ import annotations

import socket
import time

from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, read_until_closed, serve_in_process, wait_until

NO_FLOOD_LIMIT = {"flood_burst_lines": 1_000_000, "flood_lines_per_s": 1e6, "flood_max_queued_lines": 1_000_000}


def joined(srv: InProcessServer, nick: str) -> RawClient:
    """A client registered as ``nick`` that has finished joining #lobby."""
    client = srv.client()
    client.register(nick)
    client.expect("366", p1="#lobby")
    return client


def test_line_over_512_bytes_gets_417_and_the_connection_keeps_working() -> None:
    def body(srv: InProcessServer) -> None:
        alice = joined(srv, "alice")
        alice.send("PRIVMSG #lobby :" + "x" * 600)
        alice.expect("417")
        alice.send("PING :still-here")
        assert alice.expect("PONG").params[-1] == "still-here"
        # The long line was dropped, not relayed in part.
        bob = joined(srv, "bob")
        alice.send("PRIVMSG #lobby :" + "y" * 600)
        alice.send("PRIVMSG #lobby :short")
        assert bob.expect("PRIVMSG").params == ["#lobby", "short"]

    serve_in_process(body)


def test_line_limit_is_512_bytes_with_crlf_counted_in_bytes_not_characters() -> None:
    def body(srv: InProcessServer) -> None:
        alice = joined(srv, "alice")
        bob = joined(srv, "bob")
        head = "PRIVMSG #lobby :"
        alice.send(head + "a" * (510 - len(head)))  # 510 + CRLF = 512: the longest allowed
        relayed = bob.expect("PRIVMSG")
        # Accepted, and relayed cut to fit 512 bytes once the server adds alice's prefix.
        line = f":{relayed.source} PRIVMSG #lobby :{relayed.params[1]}\r\n"
        assert len(line.encode()) == 512 and set(relayed.params[1]) == {"a"}
        alice.send(head + "b" * (511 - len(head)))
        alice.expect("417")
        alice.send(head + "é" * 250)  # 250 characters, 500 bytes: too long
        alice.expect("417")
        alice.send("PRIVMSG #lobby :end")
        assert bob.expect("PRIVMSG").params[1] == "end"  # nothing in between reached bob

    serve_in_process(body)


def test_4094_bytes_of_tag_data_are_accepted_and_one_more_is_answered_417() -> None:
    """IRCv3 message-tags: a client may send 4094 bytes of tag data (client-only tags or not); more is
    refused with 417 and not relayed, never truncated."""

    def body(srv: InProcessServer) -> None:
        alice = joined(srv, "alice")
        bob = joined(srv, "bob")
        bob.send("CAP REQ :message-tags")
        bob.expect("CAP")
        # 4094 bytes of tag data: a client-only tag (relayed) and a tag meant for the server (dropped).
        server_tag = "example.org/other=" + "u" * 1000
        client_tag = "+example.org/big="
        client_tag += "t" * (4094 - len(server_tag) - 1 - len(client_tag))
        tag_data = f"{server_tag};{client_tag}"
        assert len(tag_data) == 4094
        alice.send(f"@{tag_data} PRIVMSG #lobby :hi with tags")
        relayed = bob.expect("PRIVMSG")
        assert relayed.params == ["#lobby", "hi with tags"]
        assert relayed.tags["+example.org/big"] == client_tag.partition("=")[2]
        assert "example.org/other" not in relayed.tags
        alice.send("PING :after")
        alice.expect("PONG")
        assert not any(msg.command == "417" for msg in alice.received)
        # One byte more, in a tag the server would drop anyway: refused as a whole.
        alice.send(f"@{tag_data}x PRIVMSG #lobby :one byte too many")
        alice.send(f"@{tag_data}x TAGMSG #lobby")
        alice.expect("417")
        alice.expect("417")
        # The same key twice counts twice: the raw tag data is what is limited.
        alice.send("@+a=" + "t" * 2100 + ";+a=" + "t" * 2100 + " PRIVMSG #lobby :twice")
        alice.expect("417")
        alice.send("PRIVMSG #lobby :next")
        assert bob.expect("PRIVMSG").params == ["#lobby", "next"]  # none of the refused ones came first

    serve_in_process(body)


def test_invalid_utf8_in_privmsg_is_relayed_without_crashing() -> None:
    def body(srv: InProcessServer) -> None:
        alice = joined(srv, "alice")
        bob = joined(srv, "bob")
        alice.send_raw(b"PRIVMSG #lobby :caf\xe9 \xff\xfe latin-1\r\n")
        relayed = bob.expect("PRIVMSG")
        assert relayed.params[0] == "#lobby"
        assert "caf" in relayed.params[1] and "latin-1" in relayed.params[1]
        # Nobody was hurt: both still talk.
        bob.send("PRIVMSG #lobby :ok")
        assert alice.expect("PRIVMSG").params == ["#lobby", "ok"]
        alice.send_raw(b"NICK \xff\xfe\r\nPING :fine\r\n")
        alice.expect("PONG")

    serve_in_process(body)


def test_flood_gets_excess_flood_disconnect() -> None:
    def body(srv: InProcessServer) -> None:
        witness = joined(srv, "witness")
        flooder = joined(srv, "flooder")
        flooder.send_raw(b"".join(b"PING :%d\r\n" % i for i in range(30)))
        lines = read_until_closed(flooder)
        assert any(line.startswith("ERROR") and "Excess Flood" in line for line in lines), lines
        quit_msg = witness.expect("QUIT")
        assert quit_msg.source is not None and quit_msg.source.startswith("flooder!")
        assert "Excess Flood" in quit_msg.params[0]
        srv.wait_log("disconnected flooder")
        assert any("flooder" in line and "Excess Flood" in line for line in srv.log_lines())

    serve_in_process(body, {"flood_burst_lines": 5, "flood_lines_per_s": 1, "flood_max_queued_lines": 10})


def test_moderate_burst_is_delayed_but_answered_in_full() -> None:
    def body(srv: InProcessServer) -> None:
        alice = joined(srv, "alice")
        time.sleep(0.6)  # the bucket refills after registration
        sent_at = time.monotonic()
        alice.send_raw(b"".join(b"PING :burst-%d\r\n" % i for i in range(15)))
        tokens = [alice.expect("PONG").params[-1] for _ in range(15)]
        elapsed = time.monotonic() - sent_at
        assert tokens == [f"burst-{i}" for i in range(15)]
        # 5 go at once, the other 10 wait for a token each at 10 per second: 1 s at least.
        assert elapsed >= 0.8, elapsed
        alice.send("PING :after")
        alice.expect("PONG")

    serve_in_process(body, {"flood_burst_lines": 5, "flood_lines_per_s": 10, "flood_max_queued_lines": 20})


def test_client_that_never_reads_is_dropped_for_sendq_and_others_are_served() -> None:
    def body(srv: InProcessServer) -> None:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills sooner
        slow.connect((srv.host, srv.port))
        slow.sendall(b"NICK slow\r\nUSER slow 0 * :never reads\r\n")
        srv.wait_log("registered slow!")
        sender = joined(srv, "sender")
        wait_until(lambda: len(srv.server.find_channel("#lobby").members) == 2, what="both in #lobby")
        text = "x" * 400
        deadline = time.monotonic() + 20
        sent = 0
        while not any("SendQ exceeded" in line for line in srv.log_lines()):
            assert time.monotonic() < deadline, f"no SendQ disconnect after {sent} messages"
            assert sent < 200_000, "50 MB sent and the slow client is still there"
            sender.send_raw("".join(f"PRIVMSG #lobby :{sent + i} {text}\r\n" for i in range(200)).encode())
            sent += 200
            time.sleep(0.001)
        assert srv.wait_log("disconnected slow") == "disconnected slow (127.0.0.1): SendQ exceeded"
        asked_at = time.monotonic()
        sender.send("PING :prompt")
        sender.expect("PONG")
        assert time.monotonic() - asked_at < 2.0
        slow.close()

    serve_in_process(body, {"max_sendq_bytes": 4096, **NO_FLOOD_LIMIT})


def test_third_connection_from_one_address_is_refused() -> None:
    def body(srv: InProcessServer) -> None:
        first = joined(srv, "first")
        second = srv.client()
        third = srv.client()
        lines = read_until_closed(third)
        assert len(lines) == 1 and lines[0].startswith("ERROR"), lines
        assert "Too many connections" in lines[0]
        assert "refused connection from 127.0.0.1" in srv.wait_log("refused connection")
        # The two accepted ones are unharmed, and a slot frees when one leaves.
        second.register("second")
        first.send("PING :one")
        first.expect("PONG")
        second.send("QUIT")
        read_until_closed(second)
        wait_until(lambda: srv.server.per_ip["127.0.0.1"] == 1, what="the slot to free")
        fourth = srv.client()
        fourth.register("fourth")

    serve_in_process(body, {"max_connections_per_ip": 2})


def test_connection_past_max_clients_is_refused() -> None:
    def body(srv: InProcessServer) -> None:
        first = joined(srv, "first")
        lines = read_until_closed(srv.client())
        assert len(lines) == 1 and "Server is full" in lines[0] and lines[0].startswith("ERROR"), lines
        first.send("PING :ok")
        first.expect("PONG")

    serve_in_process(body, {"max_clients": 1})


def test_idle_unregistered_connection_is_closed_after_registration_timeout() -> None:
    def body(srv: InProcessServer) -> None:
        idle = srv.client()
        started = time.monotonic()
        lines = read_until_closed(idle)
        assert time.monotonic() - started >= 0.5
        assert any(line.startswith("ERROR") and "Registration timeout" in line for line in lines), lines
        srv.wait_log("disconnected unregistered 127.0.0.1: Registration timeout")
        # One that registers in time stays.
        ok = joined(srv, "quick")
        time.sleep(0.8)
        ok.send("PING :alive")
        ok.expect("PONG")

    serve_in_process(body, {"registration_timeout_s": 0.5})


def test_ping_timeout_drops_the_silent_client_and_keeps_the_one_that_answers() -> None:
    def body(srv: InProcessServer) -> None:
        answering = joined(srv, "answering")
        silent = joined(srv, "silent")
        # Silent reads nothing and answers nothing; answering's expect() replies to every PING.
        quit_msg = answering.expect("QUIT", timeout_s=10)
        assert quit_msg.source is not None and quit_msg.source.startswith("silent!")
        assert quit_msg.params[0].startswith("Ping timeout")
        assert any(msg.command == "PING" for msg in answering.received)
        lines = read_until_closed(silent)
        assert any(line.startswith("PING") for line in lines)
        assert any(line.startswith("ERROR") and "Ping timeout" in line for line in lines), lines
        assert "Ping timeout" in srv.wait_log("disconnected silent")
        # Answering has been pinged and stays through more rounds.
        for _ in range(2):
            answering.expect("PING", timeout_s=10)
        answering.send("PING :still-here")
        answering.expect("PONG")
        assert not any("disconnected answering" in line for line in srv.log_lines())

    serve_in_process(body, {"ping_interval_s": 0.5, "ping_timeout_s": 0.5})


def _connect_from(srv: InProcessServer, source: str) -> tuple[RawClient, str]:
    """A connection from ``source`` and the first line the server sent it (None: nothing yet)."""
    client = RawClient(srv.host, srv.port, source=source)
    client.send("PING :hello")
    return client, client.read_line(timeout_s=5.0) or ""


def test_new_connections_per_address_are_throttled_and_other_addresses_are_not() -> None:
    """connect_attempts_per_ip per window from one address; then ERROR naming the limit, while the address's
    open connections stay, and other addresses (each with its own allowance) and exempt ones go on."""

    def body(srv: InProcessServer) -> None:
        kept = []
        for _ in range(5):
            client, first = _connect_from(srv, "127.0.0.2")
            assert "PONG" in first or first.startswith(":"), first
            kept.append(client)
        _refused, first = _connect_from(srv, "127.0.0.2")
        assert first.startswith("ERROR") and "connect_attempts_per_ip" in first, first
        for client in kept:  # still connected
            client.send("PING :still")
            client.expect("PONG")
        # Twenty other addresses at once: each gets its own five, no more.
        accepted = refused_count = 0
        for n in range(20):
            for _ in range(6):
                client, first = _connect_from(srv, f"127.0.1.{n + 1}")
                if first.startswith("ERROR"):
                    refused_count += 1
                else:
                    accepted += 1
                client.close()
        assert (accepted, refused_count) == (100, 20)
        assert srv.server.stats.connections_refused == 21
        _exempt, first = _connect_from(srv, "127.0.0.9")  # in throttle_exempt: never throttled
        assert not first.startswith("ERROR")

    serve_in_process(body, {"connect_attempts_per_ip": 5, "connect_throttle_window_s": 600,
                            "throttle_exempt": ["127.0.0.9"], "max_connections_per_ip": 100})


MULTILINE_CAPS = ["draft/multiline", "batch", "message-tags"]


def _multiline_batch(ref: str, lines: int) -> bytes:
    body = b"".join(b"@batch=%s PRIVMSG #lobby :line %d\r\n" % (ref.encode(), i) for i in range(lines))
    return b"BATCH +%s draft/multiline #lobby\r\n" % ref.encode() + body + b"BATCH -%s\r\n" % ref.encode()


def test_a_multiline_batch_goes_through_fakelag_line_by_line() -> None:
    """A batch sent at once is slowed like any burst (its lines are lines), and arrives whole."""

    def body(srv: InProcessServer) -> None:
        alice = srv.client()
        alice.register("alice", caps=MULTILINE_CAPS)
        alice.expect("366", p1="#lobby")
        bob = srv.client()
        bob.register("bob", caps=MULTILINE_CAPS)
        bob.expect("366", p1="#lobby")
        time.sleep(0.6)  # the bucket refills after registration
        sent_at = time.monotonic()
        alice.send_raw(_multiline_batch("r1", 18))
        start = bob.expect("BATCH")
        ref = start.params[0][1:]
        inner = bob.lines_until("BATCH")
        elapsed = time.monotonic() - sent_at
        assert start.params[1:] == ["draft/multiline", "#lobby"]
        assert [m.params[1] for m in inner[:-1]] == [f"line {i}" for i in range(18)]
        assert all(m.tags["batch"] == ref for m in inner[:-1]) and inner[-1].params == ["-" + ref]
        # 20 lines: 5 go at once, the other 15 wait for a token each at 10 per second.
        assert elapsed >= 1.2, elapsed

    serve_in_process(body, {"flood_burst_lines": 5, "flood_lines_per_s": 10, "flood_max_queued_lines": 30})


def test_a_multiline_batch_larger_than_fakelag_holds_is_excess_flood() -> None:
    def body(srv: InProcessServer) -> None:
        witness = joined(srv, "witness")
        flooder = srv.client()
        flooder.register("flooder", caps=MULTILINE_CAPS)
        flooder.expect("366", p1="#lobby")
        flooder.send_raw(_multiline_batch("big", 40))
        lines = read_until_closed(flooder)
        assert any(line.startswith("ERROR") and "Excess Flood" in line for line in lines), lines
        assert "Excess Flood" in witness.expect("QUIT").params[0]
        assert not any(m.command == "PRIVMSG" for m in witness.received), "nothing of the batch was relayed"
        assert srv.server.open_batches == {}

    serve_in_process(body, {"flood_burst_lines": 5, "flood_lines_per_s": 1, "flood_max_queued_lines": 10})


def test_a_multiline_batch_left_open_gets_fail_timeout_over_the_socket() -> None:
    def body(srv: InProcessServer) -> None:
        alice = srv.client()
        alice.register("alice", caps=MULTILINE_CAPS)
        alice.expect("366", p1="#lobby")
        alice.send("BATCH +slow draft/multiline #lobby")
        alice.send("@batch=slow PRIVMSG #lobby :and then nothing")
        fail = alice.expect("FAIL")
        assert fail.params[:3] == ["BATCH", "TIMEOUT", "slow"]
        alice.send("PING :still-here")
        assert alice.expect("PONG").params[-1] == "still-here"

    serve_in_process(body, {"multiline_timeout_s": 1})
