"""The session without a network: lines in, state and lines out (registration, CAP, SASL, history)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from salotto.clients.core import SERVER_KEY, BufferKind, ChangeKind, LineKind, Session, SessionConfig
from salotto.clients.core.model import MAX_LINES_PER_BUFFER
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


def test_always_on_is_set_once_logged_in_and_read_from_nickserv() -> None:
    session = make(sasl_account="acct", sasl_password="secret", always_on=True)
    feed(session, ":srv CAP * LS :sasl", ":srv CAP me ACK :sasl", "AUTHENTICATE +",
         ":srv 900 me me!u@h acct :You are now logged in", ":srv 903 me :SASL successful")
    assert feed(session, ":srv 001 me :Welcome", ":srv 376 me :End of MOTD") == [
        "PRIVMSG NickServ :SET ALWAYS-ON ON", "JOIN #lobby"]
    assert session.always_on is None  # until NickServ says so
    feed(session, ":NickServ!NickServ@srv NOTICE me :Always-on is on for acct: your nick stays.")
    assert session.always_on is True
    assert any("Always-on is on" in ln.text for ln in session.buffers[SERVER_KEY].lines)
    feed(session, ":NickServ!NickServ@srv NOTICE me :Always-on: off (the server default).")
    assert session.always_on is False
    # The setting is the account's: a reconnection does not send it again.
    session.disconnected("gone")
    session.begin()
    session.take_outbox()
    feed(session, ":srv 900 me me!u@h acct :You are now logged in")
    assert "PRIVMSG NickServ :SET ALWAYS-ON ON" not in feed(session, ":srv 001 me :Welcome", ":srv 376 me :End")
    # Not logged in (or nothing asked): nothing is sent.
    for config in ({"sasl_account": "acct", "sasl_password": "wrong", "always_on": False}, {}):
        other = make(**config)
        out = feed(other, ":srv 001 me :Welcome", ":srv 376 me :End of MOTD")
        assert not [line for line in out if "NickServ" in line]


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


HISTORY_CAPS = "batch draft/chathistory server-time message-tags"


def lobby_with_backlog(caps: str = HISTORY_CAPS) -> Session:
    """Joined #lobby; the backlog on join brought messages m3 and m4."""
    session = make()
    register(session, caps)
    feed(session, "@time=2024-01-01T11:00:00.000Z :me!u@h JOIN #lobby",
         ":srv BATCH +late chathistory #lobby",
         "@batch=late;time=2024-01-01T10:03:00.000Z;msgid=m3 :bob!u@h PRIVMSG #lobby :three",
         "@batch=late;time=2024-01-01T10:04:00.000Z;msgid=m4 :me!u@h PRIVMSG #lobby :four",
         ":srv BATCH -late")
    session.take_changes()
    return session


def texts(session: Session, name: str) -> list[str]:
    return [ln.text for ln in session.buffers[name].lines]


def test_scrolling_up_asks_before_the_oldest_message_and_inserts_the_reply_on_top() -> None:
    session = lobby_with_backlog()
    assert session.request_older("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BEFORE #lobby msgid=m3 50"]
    # Scrolling on while the request is in flight asks nothing more.
    assert not session.request_older("#lobby")
    assert session.take_outbox() == []
    feed(session,
         ":srv BATCH +old chathistory #lobby",
         # Same time as "three": the reply's order counts, not a re-sort by time.
         "@batch=old;time=2024-01-01T10:03:00.000Z;msgid=m1 :carol!u@h PRIVMSG #lobby :one",
         "@batch=old;time=2024-01-01T10:03:00.000Z;msgid=m2 :bob!u@h PRIVMSG #lobby :\x01ACTION two\x01",
         "@batch=old;time=2024-01-01T10:03:00.000Z;msgid=m3 :bob!u@h PRIVMSG #lobby :three")
    assert texts(session, "#lobby") == ["three", "four", "You joined #lobby"]  # nothing until the batch ends
    assert feed(session, ":srv BATCH -old") == []
    assert texts(session, "#lobby") == ["one", "two", "three", "four", "You joined #lobby"]
    changes = session.take_changes()
    assert [(c.kind, c.key, [ln.text for ln in c.lines]) for c in changes] == [
        (ChangeKind.PREPEND, "#lobby", ["one", "two"])]
    assert session.buffers["#lobby"].lines[1].kind is LineKind.ACTION
    assert session.buffers["#lobby"].unread == 0
    # The next request starts from the new oldest line; the server's CHATHISTORY= caps the limit.
    feed(session, ":srv 005 me CHATHISTORY=20 :are supported")
    assert session.request_older("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BEFORE #lobby msgid=m1 20"]


def test_an_empty_reply_is_the_start_of_history_shown_once() -> None:
    session = lobby_with_backlog()
    session.request_older("#lobby")
    session.take_outbox()
    feed(session, ":srv BATCH +old chathistory #lobby", ":srv BATCH -old")
    lines = session.buffers["#lobby"].lines
    assert [ln.text for ln in lines] == ["Start of history.", "three", "four", "You joined #lobby"]
    assert lines[0].kind is LineKind.INFO and lines[0].time <= lines[1].time
    assert [(c.kind, [ln.text for ln in c.lines]) for c in session.take_changes()] == [
        (ChangeKind.PREPEND, ["Start of history."])]
    assert not session.request_older("#lobby")
    assert session.take_outbox() == []
    # Still so after a reconnect: the buffer keeps what it learnt.
    session.disconnected("gone")
    session.begin()
    register(session, HISTORY_CAPS)
    feed(session, ":me!u@h JOIN #lobby")
    session.take_outbox()
    assert not session.request_older("#lobby")
    assert texts(session, "#lobby").count("Start of history.") == 1


def test_without_a_message_id_the_reference_is_the_oldest_time() -> None:
    session = make()
    register(session, HISTORY_CAPS)
    feed(session, "@time=2024-01-01T11:00:00.250Z :me!u@h JOIN #lobby",
         ":srv BATCH +late chathistory #lobby", ":srv BATCH -late")
    session.take_outbox()
    assert session.request_older("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BEFORE #lobby timestamp=2024-01-01T11:00:00.250Z 50"]


def test_private_conversations_load_older_lines_too() -> None:
    session = make()
    register(session, HISTORY_CAPS)
    feed(session, "@time=2024-01-01T12:00:00.000Z;msgid=p3 :Bob!u@h PRIVMSG me :latest")
    session.take_changes()
    assert session.request_older("bob")
    assert session.take_outbox() == ["CHATHISTORY BEFORE Bob msgid=p3 50"]
    feed(session, ":srv BATCH +q chathistory Bob",
         "@batch=q;time=2024-01-01T11:00:00.000Z;msgid=p1 :Bob!u@h PRIVMSG me :hi me",
         "@batch=q;time=2024-01-01T11:01:00.000Z;msgid=p2 :me!u@h PRIVMSG Bob :hi Bob",
         ":srv BATCH -q")
    assert texts(session, "bob") == ["hi me", "hi Bob", "latest"]
    assert session.buffers["bob"].lines[1].own
    assert not session.buffers["bob"].lines[0].highlight  # old news is not a new mention


def test_no_request_without_chathistory_or_where_history_makes_no_sense() -> None:
    plain = make()
    register(plain, "server-time")
    feed(plain, ":me!u@h JOIN #lobby", ":bob!u@h PRIVMSG #lobby :hi")
    plain.take_outbox()
    assert not plain.request_older("#lobby")
    assert plain.take_outbox() == []
    session = lobby_with_backlog()
    session.take_outbox()
    assert not session.request_older(SERVER_KEY)
    assert not session.request_older("#nowhere")
    feed(session, ":me!u@h PART #lobby")
    assert not session.request_older("#lobby")  # the server answers only members
    assert session.take_outbox() == []


def test_a_refused_request_can_be_asked_again() -> None:
    session = lobby_with_backlog()
    session.request_older("#lobby")
    session.take_outbox()
    feed(session, ":srv FAIL CHATHISTORY MESSAGE_ERROR #lobby :Could not read history")
    assert session.buffers["#lobby"].lines[-1].kind is LineKind.ERROR
    assert not session.buffers["#lobby"].at_start_of_history
    assert session.request_older("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BEFORE #lobby msgid=m3 50"]


def test_clear_does_not_bring_the_old_lines_back() -> None:
    session = lobby_with_backlog()
    session.take_outbox()
    session.input("/clear")
    assert session.buffers["#lobby"].lines == []
    assert not session.request_older("#lobby")


def test_a_full_buffer_keeps_its_newest_lines() -> None:
    session = lobby_with_backlog()
    session.take_outbox()
    buf = session.buffers["#lobby"]
    filler = buf.lines[-1]
    buf.lines[:0] = [filler] * (MAX_LINES_PER_BUFFER - len(buf.lines) - 1)
    assert session.request_older("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BEFORE #lobby msgid=m3 1"]
    feed(session, ":srv BATCH +old chathistory #lobby",
         "@batch=old;msgid=m1 :bob!u@h PRIVMSG #lobby :one",
         "@batch=old;msgid=m2 :bob!u@h PRIVMSG #lobby :two",
         ":srv BATCH -old")
    assert len(buf.lines) == MAX_LINES_PER_BUFFER and buf.lines[0].text == "two"
    assert not session.request_older("#lobby")  # more would push out the newest lines


def test_server_password_goes_first_and_a_464_before_registration_is_final() -> None:
    session = Session(SessionConfig(nick="me", server_password="sesame"))
    session.begin()
    assert session.take_outbox()[:3] == ["CAP LS 302", "PASS sesame", "NICK me"]
    feed(session, ":srv 464 * :Password incorrect")
    assert session.refused == "The server password was refused: Password incorrect"
    assert any("refused" in line.text for line in session.buffers[SERVER_KEY].lines if line.kind is LineKind.ERROR)
    session.begin()  # a new connection starts afresh
    assert session.refused is None
    without = make()
    feed(without, ":srv 464 * :Password required")
    assert without.refused == "This server is private: it needs a server password."


def test_a_464_after_registration_is_opers_and_changes_nothing() -> None:
    session = make()
    register(session)
    feed(session, ":srv 464 me :Password incorrect")
    assert session.refused is None
