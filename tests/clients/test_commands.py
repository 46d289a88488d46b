"""Slash commands: what each one sends, and what the user reads when something is wrong."""

from __future__ import annotations

import pytest

from salotto.clients.core import COMMANDS, SERVER_KEY, ChangeKind, Completer, InputHistory, LineKind, Session
from tests.clients.test_session import feed, make, register


@pytest.fixture
def session() -> Session:
    s = make()
    register(s)
    feed(s, ":me!u@h JOIN #lobby")
    s.take_outbox()
    return s


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("/join dev", ["JOIN #dev"]),
        ("/j #a,#b key", ["JOIN #a,#b key"]),
        ("/part", ["PART #lobby"]),
        ("/part #lobby see you", ["PART #lobby :see you"]),
        ("/msg bob hi there", ["PRIVMSG bob :hi there"]),
        ("/me waves", ["PRIVMSG #lobby :\x01ACTION waves\x01"]),
        ("/nick newme", ["NICK newme"]),
        ("/topic", ["TOPIC #lobby"]),
        ("/topic new topic", ["TOPIC #lobby :new topic"]),
        ("/topic #other set elsewhere", ["TOPIC #other :set elsewhere"]),
        ("/away lunch", ["AWAY lunch"]),
        ("/away", ["AWAY Away"]),
        ("/back", ["AWAY"]),
        ("/whois bob", ["WHOIS bob"]),
        ("/list", ["LIST"]),
        ("/kick bob behave", ["KICK #lobby bob behave"]),
        ("/mode +o bob", ["MODE #lobby +o bob"]),
        ("/mode #lobby +t", ["MODE #lobby +t"]),
        ("/invite bob", ["INVITE bob #lobby"]),
        ("/raw PRIVMSG bob :raw hi", ["PRIVMSG bob :raw hi"]),
        ("/quit bye all", ["QUIT :bye all"]),
        ("//not a command", ["PRIVMSG #lobby :/not a command"]),
        ("plain text", ["PRIVMSG #lobby :plain text"]),
    ],
)
def test_command_sends(session: Session, typed: str, sent: list[str]) -> None:
    session.input(typed)
    assert session.take_outbox() == sent


def test_query_opens_and_activates(session: Session) -> None:
    session.input("/query Bob hello")
    assert session.active == "bob"
    assert session.take_outbox() == ["PRIVMSG Bob hello"]
    assert any(c.kind is ChangeKind.ACTIVATE and c.key == "bob" for c in session.take_changes())
    session.input("/part")
    assert "bob" not in session.buffers and session.active == SERVER_KEY


def test_quit_asks_the_gui_to_close(session: Session) -> None:
    session.input("/quit")
    assert session.quit_requested
    assert any(c.kind is ChangeKind.QUIT for c in session.take_changes())


@pytest.mark.parametrize("typed", ["/nosuch", "/msg", "/kick", "/whois", "/me"])
def test_mistakes_are_explained(session: Session, typed: str) -> None:
    if typed == "/me":
        session.set_active(SERVER_KEY)
    session.input(typed)
    assert session.take_outbox() == []
    buf = session.buffers[session.active]
    assert buf.lines[-1].kind is LineKind.ERROR
    assert "Usage" in buf.lines[-1].text or "Unknown command" in buf.lines[-1].text


def test_help_lists_every_command(session: Session) -> None:
    session.input("/help")
    text = "\n".join(ln.text for ln in session.buffers["#lobby"].lines)
    for name in COMMANDS:
        assert f"/{name}" in text
    session.input("/help join")
    assert session.buffers["#lobby"].lines[-1].text.startswith("/join #channel")


def test_offline_commands_wait_for_the_connection() -> None:
    s = make()
    s.input("/join #x")
    assert s.take_outbox() == []
    assert "Not connected" in s.buffers[SERVER_KEY].lines[-1].text


def test_history_walks_back_and_restores_the_draft() -> None:
    history = InputHistory()
    history.add("one")
    history.add("two")
    assert history.up("draft") == "two"
    assert history.up("two") == "one"
    assert history.up("one") == "one"
    assert history.down("one") == "two"
    assert history.down("two") == "draft"


def test_tab_completion_cycles_nicks_and_completes_commands() -> None:
    completer = Completer()
    nicks = ["alice", "Albert", "bob"]
    assert completer.complete("al", 2, nicks, ["join"]) == ("Albert: ", 8)
    assert completer.complete("Albert: ", 8, nicks, ["join"]) == ("alice: ", 7)
    completer.reset()
    assert completer.complete("hi b", 4, nicks, []) == ("hi bob ", 7)
    assert completer.complete("/jo", 3, nicks, ["join", "quit"]) == ("/join ", 6)
    assert completer.complete("zz", 2, nicks, []) is None
