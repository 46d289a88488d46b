"""Replies, reactions, deleted messages, read markers and multiline messages in the session (no network)."""

from __future__ import annotations

from datetime import UTC, datetime

from salotto.clients.core import ChangeKind, Session
from salotto.clients.core.session import QUICK_REACTIONS
from tests.clients.test_session import feed, make, register

CAPS = "batch draft/chathistory server-time message-tags echo-message"
THUMBS = QUICK_REACTIONS[0]


def lobby(caps: str = CAPS, offered: str = "") -> Session:
    session = make()
    session.take_outbox()
    names = caps.split()
    feed(session, f":srv CAP * LS :{' '.join(names)} {offered}".strip())
    feed(session, f":srv CAP me ACK :{' '.join(names + [o.split('=')[0] for o in offered.split()])}")
    feed(session, ":srv 001 me :Welcome", ":srv 005 me PREFIX=(ov)@+ CHANTYPES=# :are supported",
         ":srv 376 me :End of MOTD", ":me!u@h JOIN #lobby", ":srv 353 me = #lobby :me bob",
         ":srv 366 me #lobby :End")
    session.take_outbox()
    feed(session, "@msgid=m1;time=2025-01-01T10:00:00.000Z :bob!u@h PRIVMSG #lobby :lunch at noon?")
    session.take_changes()
    return session


def test_a_reply_sends_the_reply_tag_and_a_received_one_keeps_it() -> None:
    session = lobby()
    session.say("#lobby", "yes!", reply_to="m1")
    assert session.take_outbox() == ["@+draft/reply=m1 PRIVMSG #lobby yes!"]
    feed(session, "@msgid=m2;+draft/reply=m1 :me!u@h PRIVMSG #lobby :yes!")
    line = session.buffers["#lobby"].lines[-1]
    assert line.reply_to == "m1" and line.own
    assert session.buffers["#lobby"].find("m1").text == "lunch at noon?"  # type: ignore[union-attr]
    # Without message-tags the tag would be dropped: a plain message, no reply claimed locally.
    plain = lobby("batch")
    plain.say("#lobby", "yes!", reply_to="m1")
    assert plain.take_outbox() == ["PRIVMSG #lobby yes!"]
    assert plain.buffers["#lobby"].lines[-1].reply_to == ""


def test_reactions_are_sent_as_tagmsg_and_counted_once_per_person() -> None:
    session = lobby()
    assert session.react("#lobby", "m1", THUMBS)
    assert session.take_outbox() == [f"@+draft/react={THUMBS};+draft/reply=m1 TAGMSG #lobby"]
    for who in ("me", "bob", "bob"):
        feed(session, f"@msgid=r-{who};+draft/react={THUMBS};+draft/reply=m1 :{who}!u@h TAGMSG #lobby")
    line = session.buffers["#lobby"].find("m1")
    assert line is not None and line.reactions == {THUMBS: ["me", "bob"]}
    assert [c.kind for c in session.take_changes()] == [ChangeKind.UPDATE, ChangeKind.UPDATE]
    # A typing notice is no reaction, and shows nothing (it used to land in the server tab).
    feed(session, "@+typing=active :bob!u@h TAGMSG #lobby")
    assert session.take_changes() == [] and line.reactions == {THUMBS: ["me", "bob"]}
    # Without message-tags nothing is sent.
    assert not lobby("batch").react("#lobby", "m1", THUMBS)


def test_reactions_replayed_from_history_attach_to_their_messages_once() -> None:
    session = make()
    register(session, CAPS)
    assert feed(session, ":me!u@h JOIN #lobby") == ["CHATHISTORY LATEST #lobby * 50"]
    feed(session,
         ":srv BATCH +h chathistory #lobby",
         "@batch=h;time=2025-01-01T10:00:00.000Z;msgid=a :bob!u@h PRIVMSG #lobby :who's in?",
         "@batch=h;time=2025-01-01T10:00:01.000Z;msgid=r1;+draft/react=x;+draft/reply=a :ann!u@h TAGMSG #lobby",
         "@batch=h;time=2025-01-01T10:00:02.000Z;msgid=b;+draft/reply=a :ann!u@h PRIVMSG #lobby :me!",
         ":srv BATCH -h")
    buf = session.buffers["#lobby"]
    assert buf.find("a").reactions == {"x": ["ann"]}  # type: ignore[union-attr]
    assert buf.find("b").reply_to == "a"  # type: ignore[union-attr]
    # The same reaction live again (a replay after a reconnect) does not count twice.
    feed(session, "@msgid=r1;+draft/react=x;+draft/reply=a :ann!u@h TAGMSG #lobby")
    assert buf.find("a").reactions == {"x": ["ann"]}  # type: ignore[union-attr]
    # A reaction to a message not loaded yet waits for it.
    feed(session, "@msgid=r2;+draft/react=y;+draft/reply=old :ann!u@h TAGMSG #lobby")
    session.request_older("#lobby")
    feed(session, ":srv BATCH +o chathistory #lobby",
         "@batch=o;time=2024-12-31T10:00:00.000Z;msgid=old :bob!u@h PRIVMSG #lobby :older", ":srv BATCH -o")
    assert buf.find("old").reactions == {"y": ["ann"]}  # type: ignore[union-attr]


def test_deleting_needs_the_cap_and_a_received_redact_removes_the_line() -> None:
    session = lobby(CAPS + " draft/message-redaction")
    feed(session, "@msgid=m2 :me!u@h PRIVMSG #lobby :oops, wrong channel")
    buf = session.buffers["#lobby"]
    mine, theirs = buf.find("m2"), buf.find("m1")
    assert mine is not None and theirs is not None
    assert session.can_redact("#lobby", mine) and not session.can_redact("#lobby", theirs)
    assert not session.redact("#lobby", "m1")
    assert session.take_outbox() == []
    assert session.redact("#lobby", "m2", "typo")
    assert session.take_outbox() == ["REDACT #lobby m2 typo"]
    session.take_changes()
    feed(session, ":me!u@h REDACT #lobby m2 :typo")
    assert buf.find("m2") is None and "oops, wrong channel" not in [ln.text for ln in buf.lines]
    assert [c.kind for c in session.take_changes()] == [ChangeKind.RELOAD]
    # A channel operator may delete anyone's message.
    feed(session, ":srv MODE #lobby +o me")
    assert session.can_redact("#lobby", theirs)
    # A redacted reaction is taken back.
    feed(session, f"@msgid=r9;+draft/react={THUMBS};+draft/reply=m1 :bob!u@h TAGMSG #lobby")
    assert theirs.reactions == {THUMBS: ["bob"]}
    feed(session, ":bob!u@h REDACT #lobby r9")
    assert theirs.reactions == {}
    # The message does not come back with a history replay.
    feed(session, "@msgid=m2 :me!u@h PRIVMSG #lobby :oops, wrong channel")
    assert buf.find("m2") is None
    # Without the cap: nothing to delete with (other servers).
    plain = lobby()
    feed(plain, "@msgid=m2 :me!u@h PRIVMSG #lobby :mine")
    assert not plain.can_redact("#lobby", plain.buffers["#lobby"].find("m2"))  # type: ignore[arg-type]


def test_read_markers_clear_unread_and_are_sent_when_read() -> None:
    session = lobby(CAPS + " draft/read-marker")
    session.set_active("*")
    feed(session, "@msgid=m2;time=2025-01-01T10:01:00.000Z :bob!u@h PRIVMSG #lobby :me: are you there?",
         "@msgid=m3;time=2025-01-01T10:02:00.000Z :bob!u@h PRIVMSG #lobby :hello?")
    buf = session.buffers["#lobby"]
    assert buf.unread == 2 and buf.mentioned
    # Read on another device up to m2: one left, no mention.
    feed(session, "MARKREAD #lobby timestamp=2025-01-01T10:01:00.000Z")
    assert buf.unread == 1 and not buf.mentioned
    feed(session, "MARKREAD #lobby *")
    assert buf.unread == 1
    # Shown here: the newest line is read, and the server hears it once (markers are per account).
    session.set_active("#lobby")
    assert not session.mark_read("#lobby")
    feed(session, ":srv 900 me me!u@h me :You are now logged in as me")
    assert session.account == "me"
    assert session.mark_read("#lobby")
    assert session.take_outbox() == ["MARKREAD #lobby timestamp=2025-01-01T10:02:00.000Z"]
    assert not session.mark_read("#lobby")
    # A line the marker says was read elsewhere does not count as unread.
    session.set_active("*")
    feed(session, "MARKREAD #lobby timestamp=2025-01-01T11:00:00.000Z",
         "@msgid=m4;time=2025-01-01T10:59:00.000Z :bob!u@h PRIVMSG #lobby :late relay")
    assert buf.unread == 0
    assert not lobby().mark_read("#lobby")  # no cap, no MARKREAD


def test_pasted_lines_go_as_one_multiline_batch_within_the_limits() -> None:
    offered = "draft/multiline=max-bytes=600,max-lines=4"
    session = lobby(CAPS, offered)
    session.say("#lobby", "first line\nsecond line", reply_to="m1")
    assert session.take_outbox() == [
        "@+draft/reply=m1 BATCH +ml1 draft/multiline #lobby",
        "@batch=ml1 PRIVMSG #lobby :first line",
        "@batch=ml1 PRIVMSG #lobby :second line",
        "BATCH -ml1",
    ]
    # A long line is cut, its pieces joined back with the concat tag.
    session.say("#lobby", "a\n" + "word " * 100)
    out = session.take_outbox()
    assert out[0].startswith("BATCH +ml2") and "draft/multiline-concat" in out[3] and len(out) == 5
    # Glued back, the pieces are the line as typed, not a space lost at the cut.
    echoed = [f"{line.split(' ', 1)[0]} :me!u@h {line.split(' ', 1)[1]}" if line.startswith("@")
              else f":me!u@h {line}" for line in out]
    feed(session, *echoed)
    assert session.buffers["#lobby"].lines[-1].text == "a\n" + ("word " * 100).rstrip("\r")
    # Over max-lines (or max-bytes): one message per line, as without the cap.
    session.say("#lobby", "1\n2\n3\n4\n5")
    assert session.take_outbox() == [f"PRIVMSG #lobby {n}" for n in range(1, 6)]
    session.say("#lobby", "x" * 350 + "\n" + "y" * 350)
    assert not session.take_outbox()[0].startswith("BATCH")
    plain = lobby()
    plain.say("#lobby", "first\nsecond")
    assert plain.take_outbox() == ["PRIVMSG #lobby first", "PRIVMSG #lobby second"]


def test_a_received_multiline_batch_is_one_message() -> None:
    session = lobby(CAPS, "draft/multiline=max-bytes=4096")
    feed(session,
         "@msgid=ml;time=2025-01-01T10:05:00.000Z;+draft/reply=m1 :bob!u@h BATCH +b1 draft/multiline #lobby",
         "@batch=b1 :bob!u@h PRIVMSG #lobby :def f():",
         "@batch=b1 :bob!u@h PRIVMSG #lobby :    return 1",
         "@batch=b1;draft/multiline-concat :bob!u@h PRIVMSG #lobby : + 1",
         ":bob!u@h BATCH -b1")
    line = session.buffers["#lobby"].lines[-1]
    assert line.text == "def f():\n    return 1 + 1"
    assert line.msgid == "ml" and line.reply_to == "m1" and line.nick == "bob"
    assert line.time == datetime(2025, 1, 1, 10, 5, tzinfo=UTC)
    # Inside a history replay, the batch is one message of the replay.
    session.request_older("#lobby")
    feed(session, ":srv BATCH +h chathistory #lobby",
         "@batch=h;msgid=ml0;time=2024-01-01T10:00:00.000Z :bob!u@h BATCH +b2 draft/multiline #lobby",
         "@batch=b2 :bob!u@h PRIVMSG #lobby :one", "@batch=b2 :bob!u@h PRIVMSG #lobby :two",
         "@batch=h :bob!u@h BATCH -b2", ":srv BATCH -h")
    assert session.buffers["#lobby"].lines[0].text == "one\ntwo"


def test_a_redacted_private_message_goes_from_the_conversation_on_both_sides() -> None:
    session = lobby(CAPS + " draft/message-redaction")
    feed(session, "@msgid=p1 :bob!u@h PRIVMSG me :sorry, wrong person",
         "@msgid=p2 :me!u@h PRIVMSG bob :no problem")
    query = session.buffers["bob"]
    assert [ln.msgid for ln in query.lines] == ["p1", "p2"]
    feed(session, ":bob!u@h REDACT me p1")  # bob deleted his
    assert [ln.msgid for ln in query.lines] == ["p2"]
    assert session.redact("bob", "p2")
    assert session.take_outbox() == ["REDACT bob p2"]
    feed(session, ":me!u@h REDACT bob p2")  # the server confirms ours
    assert query.lines == []
