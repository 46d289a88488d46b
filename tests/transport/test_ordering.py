"""A connection's commands are answered in the order it sent them, over a real socket.

Clients and bots pipeline: they write several commands at once and read the answers in order. A command
whose answer is worked out off the loop (a password hash, a storage read) holds the connection's later
lines until it is answered; other connections are not held.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from pathlib import Path
from typing import Any

from salotto.passwords import hash_password
from salotto.proto import Message
from salotto.storage.sqlite import DB_FILENAME
from tests.interop.accounts import register_account
from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, serve_in_process

OPER_PASSWORD = "correct horse"
PASSWORD = "a long password"


def _serve(tmp_path: Path, body: Any, oper_hash: str | None = None, **overrides: Any) -> None:
    config = tmp_path / "salotto.toml"
    config.write_text(f'[opers.admin]\npassword_hash = "{oper_hash or hash_password(OPER_PASSWORD, n=2**10)}"\n')
    serve_in_process(body, overrides, config_path=str(config))


def _until_pong(client: RawClient, token: str) -> list[Message]:
    """Every message up to the PONG carrying ``token``."""
    start = len(client.received)
    client.expect("PONG", p1=token)
    return client.received[start:]


def _commands(messages: list[Message]) -> list[str]:
    return [m.command for m in messages]


def test_oper_then_ping_written_together_is_answered_in_order(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        admin = srv.client()
        admin.register("admin")
        admin.send_raw(f"OPER admin :{OPER_PASSWORD}\r\nPING :after-oper\r\n".encode())
        seen = _commands(_until_pong(admin, "after-oper"))
        assert "381" in seen, seen  # RPL_YOUREOPER before the PONG that was sent after it
        # A wrong password is answered in its turn too.
        admin.send_raw(b"OPER admin :wrong\r\nPING :after-wrong\r\n")
        assert "464" in _commands(_until_pong(admin, "after-wrong"))

    _serve(tmp_path, body)


def test_register_then_ping_written_together_is_answered_in_order(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        alice = srv.client()
        alice.register("alice")
        alice.send_raw(f"REGISTER alice * :{PASSWORD}\r\nPING :after-register\r\n".encode())
        seen = _until_pong(alice, "after-register")
        assert [m.params[0] for m in seen if m.command == "REGISTER"] == ["SUCCESS"], _commands(seen)
        assert "900" in _commands(seen)  # logged in, before the PONG

    _serve(tmp_path, body)


def test_pipelined_sasl_logs_in_before_registering_joining_and_speaking(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        register_account(srv, "alice", PASSWORD)
        watcher = srv.client()
        watcher.register("watcher", caps=["account-tag"])
        watcher.send("JOIN #x")
        watcher.expect("366")
        bot = srv.client()
        credentials = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        bot.send_raw(
            "CAP LS 302\r\nCAP REQ :sasl\r\nNICK alice\r\nUSER alice 0 * :a bot\r\nAUTHENTICATE PLAIN\r\n"
            f"AUTHENTICATE {credentials}\r\nCAP END\r\nJOIN #x\r\nPRIVMSG #x :hi\r\nPING :done\r\n".encode()
        )
        seen = _commands(_until_pong(bot, "done"))
        assert "903" in seen and "001" in seen, seen
        assert seen.index("900") < seen.index("903") < seen.index("001") < seen.index("JOIN"), seen
        said = watcher.expect("PRIVMSG", p1="hi")
        assert said.tags.get("account") == "alice"  # it spoke logged in

    _serve(tmp_path, body)


def test_cap_end_in_the_middle_of_sasl_aborts_it_with_906_then_registers(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        client = srv.client()
        client.send_raw(b"CAP LS 302\r\nCAP REQ :sasl\r\nNICK bob\r\nUSER bob 0 * :bob\r\nAUTHENTICATE PLAIN\r\n"
                        b"CAP END\r\nPING :done\r\n")
        seen = _commands(_until_pong(client, "done"))
        assert "906" in seen and "001" in seen and seen.index("906") < seen.index("001"), seen
        client.send("AUTHENTICATE +")  # the exchange is over: this starts nothing
        client.send("PING :again")
        assert "AUTHENTICATE" not in _commands(_until_pong(client, "again"))

    _serve(tmp_path, body)


def test_nickserv_identify_and_chathistory_answer_before_the_next_command(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        register_account(srv, "carol", PASSWORD)
        carol = srv.client()
        carol.register("carol", caps=["draft/chathistory", "batch", "server-time"])
        carol.send_raw(f"PRIVMSG NickServ :IDENTIFY {PASSWORD}\r\nPING :after-identify\r\n".encode())
        assert "900" in _commands(_until_pong(carol, "after-identify"))
        carol.send_raw(b"PRIVMSG #lobby :remember me\r\nCHATHISTORY LATEST #lobby * 10\r\nPING :after-history\r\n")
        seen = _until_pong(carol, "after-history")
        assert [m.params[1] for m in seen if m.command == "PRIVMSG"] == ["remember me"], _commands(seen)
        assert _commands(seen)[-2] == "BATCH"  # the history batch closed before the PONG

    _serve(tmp_path, body)


def test_a_slow_hash_on_one_connection_does_not_delay_another_connections_pong(tmp_path: Path) -> None:
    # p=16 makes the hash sixteen times the cost of n=2**15 without more memory: about a second here.
    slow = hash_password(OPER_PASSWORD, n=2**15, p=16)

    def body(srv: InProcessServer) -> None:
        admin = srv.client()
        admin.register("admin")
        other = srv.client()
        other.register("other")
        started = time.monotonic()
        admin.send_raw(f"OPER admin :{OPER_PASSWORD}\r\nPING :admin\r\n".encode())
        other.send("PING :other")
        other.expect("PONG", p1="other")
        other_waited = time.monotonic() - started
        seen = _commands(_until_pong(admin, "admin"))
        admin_waited = time.monotonic() - started
        assert "381" in seen, seen
        assert other_waited < admin_waited / 2, (other_waited, admin_waited)

    _serve(tmp_path, body, oper_hash=slow)


def test_lines_held_behind_a_pending_command_are_bounded(tmp_path: Path) -> None:
    """What waits behind a command counts as fakelag's queue does: past flood_max_queued_lines, Excess Flood."""
    slow = hash_password(OPER_PASSWORD, n=2**15, p=16)

    def body(srv: InProcessServer) -> None:
        admin = srv.client()
        admin.register("admin")
        admin.send_raw(f"OPER admin :{OPER_PASSWORD}\r\n".encode() + b"PING :x\r\n" * 30)
        error = admin.expect("ERROR")
        assert "Excess Flood" in error.params[0]

    _serve(tmp_path, body, oper_hash=slow, flood_max_queued_lines=10, flood_burst_lines=100)


def test_the_replay_on_join_comes_before_the_answer_to_the_next_command(tmp_path: Path) -> None:
    def body(srv: InProcessServer) -> None:
        alice = srv.client()
        alice.register("alice")
        alice.send_raw(b"JOIN #room\r\nPRIVMSG #room :old news\r\nPING :said\r\n")
        _until_pong(alice, "said")
        bob = srv.client()  # no draft/chathistory: the server replays the channel's last lines on join
        bob.register("bob")
        bob.send_raw(b"JOIN #room\r\nPING :after-join\r\n")
        seen = _until_pong(bob, "after-join")
        # Without server-time the replayed line says when it was said: "[2026-... UTC] old news".
        assert any(m.command == "PRIVMSG" and m.params[1].endswith("] old news") for m in seen), _commands(seen)

    _serve(tmp_path, body)


def test_a_locked_database_holds_only_the_connection_that_writes(tmp_path: Path) -> None:
    """A database that is slow to take a write (here: locked by another process's transaction, as a
    backup or a busy networked database would) delays the answer to the REGISTER that writes, and that
    connection's next command after it; every other connection goes on being answered at once."""
    data_dir = tmp_path / "data"

    def body(srv: InProcessServer) -> None:
        bob = srv.client()
        bob.register("bob")
        carol = srv.client()
        carol.register("carol")
        for client in (bob, carol):
            client.expect("366")  # the welcome and the autojoin are read
        bob.nothing_more(0.2)
        lock = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the writer's next write waits for this (up to 5 s)
        try:
            bob.send_raw(f"REGISTER * * :{PASSWORD}\r\nPING :bob\r\n".encode())
            # Through the hash (a fraction of a second) and well into the write that waits on the lock.
            slowest = 0.0
            for i in range(12):
                started = time.monotonic()
                carol.send(f"PING :carol{i}")
                carol.expect("PONG", p1=f"carol{i}")
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.2)
            assert slowest < 0.5, slowest
            assert bob.nothing_more(0.1) == []  # neither the answer nor the PONG behind it
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        seen = _until_pong(bob, "bob")
        assert [m.params[0] for m in seen if m.command == "REGISTER"] == ["SUCCESS"]

    serve_in_process(body, {"data_dir": str(data_dir), "account_registration": True})
