"""Details of Modern IRC and IRCv3 that clients rely on, each as a client sees it."""

from __future__ import annotations

import re
from pathlib import Path

from salotto.proto import parse
from salotto.proto.numerics import ERR_NEEDMOREPARAMS, ERR_USERNOTINCHANNEL
from tests.server.harness import Harness, User

PASSWORD = "a long password"


def test_user_with_an_empty_realname_is_461_and_does_not_register() -> None:
    h = Harness()
    client = h.connect()
    client.send("NICK bob")
    client.send("USER bob 0 * :")
    assert client.lines() == [f":salotto.local {ERR_NEEDMOREPARAMS} bob USER :Not enough parameters"]
    assert not client.client.registered
    client.send("USER bob 0 * :Bob Realname")  # the 461 left the way open
    assert client.client.registered and client.client.realname == "Bob Realname"


def test_kick_with_several_nicks_kicks_each_with_a_kick_line_of_its_own() -> None:
    h = Harness(autojoin=[])
    op, bob, carol, dave = (h.user(n) for n in ("op", "bob", "carol", "dave"))
    for user in (op, bob, carol, dave):
        user.send("JOIN #room")
    for user in (op, bob, carol, dave):
        user.lines()
    op.send("KICK #room bob,nobody,carol :enough")
    assert op.lines() == [
        ":op!~op@127.0.0.1 KICK #room bob :enough",
        f":salotto.local {ERR_USERNOTINCHANNEL} op nobody #room :They aren't on that channel",
        ":op!~op@127.0.0.1 KICK #room carol :enough",
    ]
    assert dave.lines() == [":op!~op@127.0.0.1 KICK #room bob :enough", ":op!~op@127.0.0.1 KICK #room carol :enough"]
    assert set(h.server.find_channel("#room").members) == {op.client, dave.client}  # type: ignore[union-attr]


def test_a_labelled_message_to_oneself_comes_back_as_the_labelled_echo() -> None:
    h = Harness()
    alice = h.user("alice", caps=["labeled-response", "batch", "echo-message", "message-tags"])
    for line in ("@label=a PRIVMSG alice :note", "@label=b NOTICE alice :note", "@label=c;+x=y TAGMSG alice"):
        alice.send(line)
        (echo,) = alice.messages()  # once, not as a delivery and an echo
        command = line.split(" ")[1]
        assert echo.tags["label"] == line[7] and echo.command == command and echo.params[0] == "alice"
        assert echo.source is not None and echo.source.startswith("alice!")


def _lusers(user: User) -> dict[str, list[int]]:
    user.send("LUSERS")
    numbers: dict[str, list[int]] = {}
    for msg in user.messages():
        numbers[msg.command] = [int(n) for p in msg.params[1:] for n in re.findall(r"\d+", p)]
    return numbers


def test_lusers_numbers_agree_with_each_other_and_count_the_invisible() -> None:
    h = Harness()
    users = [h.user(f"user{i}") for i in range(5)]
    h.connect()  # one connection that has not registered yet
    users[1].send("MODE user1 +i")
    users[2].send("MODE user2 +i")
    users[2].send("MODE user2 +i")  # twice: still one invisible user
    users[3].send("MODE user3 +i")
    users[3].send("MODE user3 -i")
    users[4].send("MODE user4 +i")
    users[4].send("QUIT")
    n = _lusers(users[0])
    visible, invisible, servers = n["251"]
    assert (visible, invisible, servers) == (2, 2, 1)
    assert n["253"][0] == 1  # the unregistered connection
    assert n["255"][:2] == [visible + invisible, 0]
    assert n["265"][:2] == [4, 5] and n["266"][:2] == [4, 5]  # current, and the most there were at once
    assert n["265"][2:] == [4, 5] and n["266"][2:] == [4, 5]  # the text says the same


def _logged_in(h: Harness, nick: str, caps: list[str] | None = None) -> User:
    user = h.user(nick, caps=caps)
    user.send(f"REGISTER {nick} * :{PASSWORD}")
    assert any(line.split(" ")[1] == "900" for line in user.lines())
    return user


def test_account_tag_is_on_everything_a_logged_in_user_sends(tmp_path: Path) -> None:
    h = Harness(autojoin=[])
    h.attach_store(tmp_path)
    alice = _logged_in(h, "alice", caps=["setname"])
    bob = h.user("bob", caps=["account-tag", "away-notify", "setname", "invite-notify"])
    bob.send("JOIN #room")
    alice.send("JOIN #room")
    bob.send("MODE #room +o alice")  # bob joined first and is the operator
    bob.lines()
    alice.send("TOPIC #room :hello")
    alice.send("AWAY :out")
    alice.send("SETNAME :Alice A")
    alice.send("MODE #room +v bob")
    alice.send("JOIN #other")
    alice.send("INVITE bob #other")
    alice.send("KICK #room bob :bye")
    bob.send("JOIN #room")
    alice.send("PART #room")
    bob.send("JOIN #room")
    alice.send("JOIN #room")
    alice.send("NICK alice2")
    alice.send("QUIT :gone")
    from_alice = [m for m in bob.messages() if m.source and m.source.split("!")[0] in ("alice", "alice2")]
    commands = [m.command for m in from_alice]
    for command in ("TOPIC", "AWAY", "SETNAME", "MODE", "INVITE", "KICK", "PART", "JOIN", "NICK", "QUIT"):
        assert command in commands, commands
    assert all(m.tags.get("account") == "alice" for m in from_alice), [m.to_line() for m in from_alice]
    # Without the cap, no tag.
    plain = h.user("carol")
    plain.send("JOIN #room")
    plain.lines()
    other = _logged_in(h, "dave")
    other.send("JOIN #room")
    assert all(not parse(line).tags for line in plain.lines())


def test_register_before_connecting_under_an_existing_account_name_is_account_exists(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path)
    alice = _logged_in(h, "alice")
    alice.send("QUIT")
    newcomer = h.connect()
    newcomer.send("CAP LS 302")
    newcomer.send("NICK someone")
    newcomer.lines()
    newcomer.send(f"REGISTER alice * :{PASSWORD}")
    assert newcomer.lines() == [
        ":salotto.local FAIL REGISTER ACCOUNT_EXISTS alice :An account with that name already exists"]
    newcomer.send(f"REGISTER brandnew * :{PASSWORD}")  # a free name that is not the nick: still refused
    assert "ACCOUNT_NAME_MUST_BE_NICK" in newcomer.lines()[0]
