"""The session without a network: lines in, state and lines out (registration, CAP, SASL, history)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from salotto.clients.core import SERVER_KEY, BufferKind, ChangeKind, LineKind, Session, SessionConfig
from salotto.proto import parse

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(nick: str = "me", **config: object) -> Session:
    session = Session(SessionConfig(nick=nick, **config), now=lambda: NOW)  # type: ignore[arg-type]
    session.begin()
    session.take_outbox()
    return session


def feed(session: Session, *lines: str) -> list[str]:
    for line in lines:
        session.receive(parse(line))
    return session.take_outbox()


def register(session: Session, caps: str = "") -> None:
    session.take_outbox()
    if caps:
        feed(session, f":srv CAP * LS :{caps}")
        feed(session, f":srv CAP me ACK :{caps}")
    feed(session, ":srv 001 me :Welcome", ":srv 005 me PREFIX=(qov)~@+ CHANTYPES=# :are supported",
         ":srv 376 me :End of MOTD")


def test_registration_lines_and_autojoin() -> None:
    session = Session(SessionConfig(nick="me", realname="Me Myself"))
    session.begin()
    assert session.take_outbox() == ["CAP LS 302", "NICK me", "USER me 0 * :Me Myself"]
    out = feed(session, ":srv CAP * LS :multi-prefix sasl unknown-cap")
    assert out == ["CAP REQ multi-prefix"]  # no account: no sasl
    assert feed(session, ":srv CAP me ACK :multi-prefix") == ["CAP END"]
    assert feed(session, ":srv 001 me :Welcome") == []
    assert session.registered
    assert feed(session, ":srv 376 me :End of MOTD") == ["JOIN #lobby"]


def test_server_without_cap_still_registers() -> None:
    session = make()
    out = feed(session, ":srv 421 * CAP :Unknown command", ":srv 001 me :Welcome", ":srv 422 me :No MOTD")
    assert "JOIN #lobby" in out
    assert not [ln for ln in session.buffers[SERVER_KEY].lines if ln.kind is LineKind.ERROR and "MOTD" in ln.text]


def test_multiline_cap_ls_and_chathistory_preference() -> None:
    session = make()
    assert feed(session, ":srv CAP * LS * :server-time draft/chathistory") == []
    out = feed(session, ":srv CAP * LS :batch echo-message chathistory")
    assert out == ["CAP REQ :server-time echo-message batch chathistory"]


def test_nick_in_use_during_registration_tries_another() -> None:
    session = make("taken")
    assert feed(session, ":srv 433 * taken :Nickname is already in use") == ["NICK taken_"]
    feed(session, ":srv 001 taken_ :Welcome")
    assert session.nick == "taken_"


def test_sasl_plain() -> None:
    session = make(sasl_account="acct", sasl_password="secret")
    assert feed(session, ":srv CAP * LS :sasl=PLAIN,EXTERNAL server-time") == ["CAP REQ :server-time sasl"]
    assert feed(session, ":srv CAP me ACK :server-time sasl") == ["AUTHENTICATE PLAIN"]
    out = feed(session, "AUTHENTICATE +")
    assert out == ["AUTHENTICATE " + base64.b64encode(b"acct\0acct\0secret").decode()]
    assert feed(session, ":srv 900 me me!u@h acct :You are now logged in", ":srv 903 me :SASL successful") == [
        "CAP END"
    ]


def test_sasl_failure_still_ends_cap_and_says_why() -> None:
    session = make(sasl_account="acct", sasl_password="wrong")
    feed(session, ":srv CAP * LS :sasl", ":srv CAP me ACK :sasl", "AUTHENTICATE +")
    assert feed(session, ":srv 904 me :SASL authentication failed") == ["CAP END"]
    assert any("Login failed" in ln.text for ln in session.buffers[SERVER_KEY].lines)


def test_sasl_not_offered_is_explained() -> None:
    session = make(sasl_account="acct", sasl_password="pw")
    assert feed(session, ":srv CAP * LS :server-time") == ["CAP REQ server-time"]
    assert any("does not offer SASL" in ln.text for ln in session.buffers[SERVER_KEY].lines)


def test_names_prefixes_and_modes() -> None:
    session = make()
    register(session, "multi-prefix")
    feed(session, ":me!u@h JOIN #lobby", ":srv 353 me = #lobby :~@owner @+both +voiced me",
         ":srv 366 me #lobby :End")
    buf = session.buffers["#lobby"]
    assert {m.nick: m.prefixes for m in buf.members.values()} == {
        "owner": "~@", "both": "@+", "voiced": "+", "me": ""}
    assert [m.display for m in buf.sorted_members(session.prefix_symbols)] == ["~owner", "@both", "+voiced", "me"]
    feed(session, ":owner!u@h MODE #lobby +o-v+l voiced voiced 10")
    assert buf.members["voiced"].prefixes == "@"
    assert session.active == "#lobby"


def test_privmsg_routing_mentions_and_server_time() -> None:
    session = make()
    register(session, "server-time")
    feed(session, ":me!u@h JOIN #lobby")
    session.set_active(SERVER_KEY)
    feed(session, "@time=2024-05-01T12:00:00.000Z :bob!u@h PRIVMSG #lobby :hey ME, look")
    line = session.buffers["#lobby"].lines[-1]
    assert line.time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert line.highlight and line.nick == "bob"
    assert session.buffers["#lobby"].unread == 1 and session.buffers["#lobby"].mentioned
    feed(session, ":bob!u@h PRIVMSG #lobby :memes are not mentions")
    assert not session.buffers["#lobby"].lines[-1].highlight
    feed(session, ":bob!u@h PRIVMSG me :\x01ACTION waves\x01")
    query = session.buffers["bob"]
    assert query.kind is BufferKind.QUERY and query.lines[-1].kind is LineKind.ACTION
    reply = feed(session, ":bob!u@h PRIVMSG me :\x01VERSION\x01")
    assert reply == ["NOTICE bob :\x01VERSION salotto desktop client\x01"]
    session.set_active("#lobby")
    assert session.buffers["#lobby"].unread == 0 and not session.buffers["#lobby"].mentioned


def test_local_echo_only_without_echo_message() -> None:
    session = make()
    register(session)
    feed(session, ":me!u@h JOIN #lobby")
    session.input("hello")
    assert session.take_outbox() == ["PRIVMSG #lobby hello"]
    assert session.buffers["#lobby"].lines[-1].own
    echo = make()
    register(echo, "echo-message")
    feed(echo, ":me!u@h JOIN #lobby")
    count = len(echo.buffers["#lobby"].lines)
    echo.input("hello")
    assert len(echo.buffers["#lobby"].lines) == count
    feed(echo, ":me!u@h PRIVMSG #lobby hello")
    assert echo.buffers["#lobby"].lines[-1].own


def test_long_messages_are_split() -> None:
    session = make()
    register(session)
    feed(session, ":me!u@h JOIN #lobby")
    session.input("word " * 200)
    out = session.take_outbox()
    assert len(out) == 3 and all(len(line.encode()) <= 420 for line in out)


def test_chathistory_on_join_and_batch_merge() -> None:
    session = make()
    register(session, "batch draft/chathistory server-time message-tags")
    out = feed(session, ":me!u@h JOIN #lobby")
    assert out == ["CHATHISTORY LATEST #lobby * 50"]
    feed(session,
         ":srv BATCH +h1 chathistory #lobby",
         "@batch=h1;time=2024-01-01T10:00:00.000Z;msgid=a :bob!u@h PRIVMSG #lobby :older",
         "@batch=h1;time=2024-01-01T10:01:00.000Z;msgid=b :me!u@h PRIVMSG #lobby :mine, earlier")
    assert all(ln.text not in ("older",) for ln in session.buffers["#lobby"].lines)
    session.take_changes()
    feed(session, ":srv BATCH -h1")
    texts = [ln.text for ln in session.buffers["#lobby"].lines]
    assert texts.index("older") < texts.index("mine, earlier") < texts.index("You joined #lobby")
    assert any(c.kind is ChangeKind.RELOAD for c in session.take_changes())
    assert session.buffers["#lobby"].unread == 0
    # A replayed message (same msgid) is not shown twice.
    feed(session, "@msgid=b;time=2024-01-01T10:01:00.000Z :me!u@h PRIVMSG #lobby :mine, earlier")
    assert [ln.text for ln in session.buffers["#lobby"].lines].count("mine, earlier") == 1
    # After a reconnect, history is asked for from the last message seen.
    session.disconnected("gone")
    session.begin()
    register(session, "batch draft/chathistory")
    assert feed(session, ":me!u@h JOIN #lobby") == ["CHATHISTORY LATEST #lobby msgid=b 50"]


def test_disconnect_keeps_buffers_and_rejoins() -> None:
    session = make()
    register(session)
    feed(session, ":me!u@h JOIN #lobby", ":me!u@h JOIN #dev", ":bob!u@h JOIN #dev")
    session.disconnected("connection reset")
    assert not session.buffers["#dev"].joined and not session.buffers["#dev"].members
    assert "Disconnected: connection reset" in session.buffers["#dev"].lines[-1].text
    session.begin()
    session.take_outbox()
    assert feed(session, ":srv 001 me :hi", ":srv 376 me :end") == ["JOIN #lobby,#dev"]


def test_nick_changes_quits_and_kicks() -> None:
    session = make()
    register(session)
    feed(session, ":me!u@h JOIN #lobby", ":srv 353 me = #lobby :me bob carol", ":srv 366 me #lobby :End",
         ":bob!u@h PRIVMSG me :hi")
    feed(session, ":bob!u@h NICK robert")
    assert "robert" in session.buffers["#lobby"].members and "robert" in session.buffers
    assert "bob" not in session.buffers
    feed(session, ":carol!u@h QUIT :bye")
    assert "carol" not in session.buffers["#lobby"].members
    assert session.buffers["#lobby"].lines[-1].text == "carol quit (bye)"
    feed(session, ":me!u@h NICK other")
    assert session.nick == "other"
    feed(session, ":robert!u@h KICK #lobby other :out")
    assert not session.buffers["#lobby"].joined


def test_errors_are_readable_lines() -> None:
    session = make()
    register(session)
    feed(session, ":me!u@h JOIN #lobby")
    feed(session, ":srv 482 me #lobby :You're not channel operator")
    line = session.buffers["#lobby"].lines[-1]
    assert (line.kind, line.text) == (LineKind.ERROR, "#lobby: You're not channel operator")
    feed(session, ":srv 401 me nobody :No such nick/channel")
    assert session.buffers["#lobby"].lines[-1].text == "nobody: No such nick/channel"
    feed(session, "FAIL CHATHISTORY INVALID_TARGET #x :Messages could not be retrieved")
    assert session.buffers["#lobby"].lines[-1].kind is LineKind.ERROR
    assert feed(session, "PING :abc") == ["PONG abc"]
