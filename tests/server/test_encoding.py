"""Bytes that are not UTF-8: relayed as they came, stored as text, never an internal error.

IRC is bytes: a client in Latin-1 talks to its peers in Latin-1. The server keeps such bytes through its
handling (salotto.proto.framing.decode_wire) and gives them back unchanged; only what must be text (a text
WebSocket frame, the database) gets U+FFFD instead.
"""

from __future__ import annotations

from pathlib import Path

from salotto.proto.numerics import ERR_NOSUCHCHANNEL
from tests.server.harness import Harness, User


def _raw(user: User) -> bytes:
    """What ``user`` received since the last call, as bytes."""
    user.conn.drain()
    data = bytes(user.conn.data[user._read :])
    user._read = len(user.conn.data)
    return data


def _send(h: Harness, user: User, data: bytes) -> None:
    h.server.handle_line(user.client, data)


def test_a_latin1_message_reaches_its_peers_byte_for_byte() -> None:
    h = Harness()
    alice = h.user("alice", caps=["echo-message"])
    bob = h.user("bob")
    _send(h, alice, b"PRIVMSG #lobby :caf\xe9 cr\xe8me")
    _send(h, alice, b"PRIVMSG bob :\xe0 bient\xf4t")
    received = _raw(bob)
    assert b"PRIVMSG #lobby :caf\xe9 cr\xe8me\r\n" in received
    assert b"PRIVMSG bob :\xe0 bient\xf4t\r\n" in received
    assert b"PRIVMSG #lobby :caf\xe9 cr\xe8me\r\n" in _raw(alice)  # the echo too
    assert h.server.internal_errors == 0


def test_bytes_that_are_not_utf8_in_every_command_are_answered_never_an_internal_error(tmp_path: Path) -> None:
    h = Harness(autojoin=[])
    h.attach_store(tmp_path)
    alice = h.user("alice", caps=["labeled-response", "batch", "message-tags"])
    bob = h.user("bob")
    lines = [
        b"JOIN #caf\xe9", b"PART #caf\xe9", b"TOPIC #caf\xe9 :x", b"NAMES #caf\xe9", b"WHO #caf\xe9",
        b"WHOIS caf\xe9", b"PRIVMSG caf\xe9 :hi", b"NOTICE #caf\xe9 :hi", b"MODE #caf\xe9 +k \xff",
        b"AWAY :\xff\xfe", b"NICK caf\xe9", b"@label=\xff PING :\xfe", b"@+x=\xff TAGMSG bob",
        b"PRIVMSG NickServ :IDENTIFY alice \xff\xfe", b"PRIVMSG NickServ :INFO caf\xe9",
        b"PRIVMSG ChanServ :INFO #caf\xe9", b"KICK #caf\xe9 bob", b"INVITE bob #caf\xe9",
        b"REGISTER alice * :\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", b"REGISTER alice caf\xe9@example.org :long enough",
        b"VERIFY alice \xff", b"SETNAME :\xff", b"USERHOST caf\xe9", b"ISON caf\xe9", b"WHOWAS caf\xe9",
        b"LIST #caf\xe9", b"OPER admin \xff", b"CAP REQ :\xff",
    ]
    for line in lines:
        _send(h, alice, line)
    replies = alice.lines()
    assert h.server.internal_errors == 0, replies
    assert any(f" {ERR_NOSUCHCHANNEL} alice #caf" in line for line in replies)  # a channel name is text
    assert any("FAIL REGISTER UNACCEPTABLE_PASSWORD" in line for line in replies)
    assert any("FAIL REGISTER INVALID_EMAIL" in line for line in replies)
    assert alice.client.account is None
    bob.lines()


def test_a_registered_channels_topic_that_is_not_utf8_is_relayed_as_sent_and_stored_as_text(tmp_path: Path) -> None:
    h = Harness(autojoin=[])
    store = h.attach_store(tmp_path)
    alice = h.user("alice")
    alice.send("REGISTER alice * :long enough")
    alice.send("JOIN #room")
    alice.send("PRIVMSG ChanServ :REGISTER #room")
    bob = h.user("bob")
    bob.send("JOIN #room")
    _raw(bob)
    alice.lines()
    _send(h, alice, b"TOPIC #room :caf\xe9 ouvert")
    assert b"TOPIC #room :caf\xe9 ouvert\r\n" in _raw(bob)
    registration = store.get_channel("#room")
    assert registration is not None and registration.topic == "caf\ufffd ouvert"
    assert h.server.internal_errors == 0
