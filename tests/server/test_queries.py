"""WHO, WHOIS, WHOWAS, USERHOST, ISON and the server information commands."""

from __future__ import annotations

from salotto.proto.numerics import (
    ERR_NOSUCHNICK,
    ERR_WASNOSUCHNICK,
    RPL_ADMINME,
    RPL_AWAY,
    RPL_ENDOFINFO,
    RPL_ENDOFMOTD,
    RPL_ENDOFWHO,
    RPL_ENDOFWHOIS,
    RPL_ENDOFWHOWAS,
    RPL_INFO,
    RPL_ISON,
    RPL_ISUPPORT,
    RPL_LUSERCLIENT,
    RPL_LUSERME,
    RPL_MOTD,
    RPL_MOTDSTART,
    RPL_TIME,
    RPL_USERHOST,
    RPL_VERSION,
    RPL_WHOISCHANNELS,
    RPL_WHOISIDLE,
    RPL_WHOISSERVER,
    RPL_WHOISUSER,
    RPL_WHOREPLY,
    RPL_WHOWASUSER,
)
from tests.server.harness import Harness


def test_who_channel_and_nick() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send("AWAY :out")
    alice.lines()
    alice.send("WHO #lobby")
    replies = alice.messages()
    assert [m.command for m in replies] == [RPL_WHOREPLY, RPL_WHOREPLY, RPL_ENDOFWHO]
    rows = {m.params[5]: m for m in replies[:2]}
    assert rows["alice"].params[1:7] == ["#lobby", "~alice", "127.0.0.1", "salotto.local", "alice", "H"]
    assert rows["bob"].params[6] == "G"
    assert rows["bob"].params[7] == "0 bob Realname"
    alice.send("WHO b*")
    assert [m.params[5] for m in alice.messages() if m.command == RPL_WHOREPLY] == ["bob"]


def test_who_mask_hides_invisible_strangers() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send("MODE bob +i")
    alice.send("WHO b*")
    assert [m.command for m in alice.messages()] == [RPL_ENDOFWHO]


def test_whois() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send("AWAY :brb")
    h.clock.now += 42
    alice.lines()
    alice.send("WHOIS bob")
    replies = alice.messages()
    commands = [m.command for m in replies]
    assert commands[0] == RPL_WHOISUSER and commands[-1] == RPL_ENDOFWHOIS
    assert replies[0].params[1:] == ["bob", "~bob", "127.0.0.1", "*", "bob Realname"]
    for needed in (RPL_WHOISCHANNELS, RPL_WHOISSERVER, RPL_AWAY, RPL_WHOISIDLE):
        assert needed in commands
    idle = next(m for m in replies if m.command == RPL_WHOISIDLE)
    assert idle.params[2] == "42"
    alice.send("WHOIS ghost")
    assert alice.numerics() == [ERR_NOSUCHNICK, RPL_ENDOFWHOIS]


def test_whowas_remembers_departed_and_renamed() -> None:
    h = Harness(whowas_max_entries=2)
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send("NICK robert")
    bob.send("QUIT")
    alice.lines()
    alice.send("WHOWAS bob")
    replies = alice.messages()
    assert [m.command for m in replies] == [RPL_WHOWASUSER, RPL_WHOISSERVER, RPL_ENDOFWHOWAS]
    assert replies[0].params[1:3] == ["bob", "~bob"]
    alice.send("WHOWAS robert")
    assert RPL_WHOWASUSER in alice.numerics()
    h.user("carol").send("QUIT")
    alice.send("WHOWAS bob")
    assert alice.numerics() == [ERR_WASNOSUCHNICK, RPL_ENDOFWHOWAS], "only whowas_max_entries are kept"


def test_userhost_and_ison() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send("AWAY :x")
    alice.lines()
    alice.send("USERHOST alice bob ghost")
    reply = alice.messages()[0]
    assert reply.command == RPL_USERHOST
    assert reply.params[-1] == "alice=+~alice@127.0.0.1 bob=-~bob@127.0.0.1"
    alice.send("ISON ghost BOB alice")
    reply = alice.messages()[0]
    assert reply.command == RPL_ISON and reply.params[-1] == "bob alice"


def test_server_information_commands() -> None:
    h = Harness(admin_name="Ada", admin_email="ada@example.org")
    alice = h.user("alice")
    alice.send("VERSION")
    commands = alice.numerics()
    assert commands[0] == RPL_VERSION and RPL_ISUPPORT in commands
    alice.send("TIME")
    assert alice.numerics() == [RPL_TIME]
    alice.send("ADMIN")
    replies = alice.messages()
    assert replies[0].command == RPL_ADMINME
    assert "Ada" in [m.params[-1] for m in replies] and "ada@example.org" in [m.params[-1] for m in replies]
    alice.send("INFO")
    commands = alice.numerics()
    assert commands[-1] == RPL_ENDOFINFO and RPL_INFO in commands
    alice.send("LUSERS")
    replies = alice.messages()
    assert replies[0].command == RPL_LUSERCLIENT
    assert next(m for m in replies if m.command == RPL_LUSERME).params[-1] == "I have 1 clients and 0 servers"
    alice.send("MOTD")
    commands = alice.numerics()
    assert commands[0] == RPL_MOTDSTART and RPL_MOTD in commands and commands[-1] == RPL_ENDOFMOTD


def test_motd_from_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    motd = tmp_path / "motd.txt"
    motd.write_text("Be kind.\nNo spam.\n")
    h = Harness(motd_file=str(motd))
    alice = h.user("alice")
    alice.send("MOTD")
    texts = [m.params[-1] for m in alice.messages() if m.command == RPL_MOTD]
    assert texts == ["- Be kind.", "- No spam."]


def test_who_mask_results_are_bounded() -> None:
    h = Harness(who_max_results=3)
    alice = h.user("alice")
    for i in range(6):
        h.user(f"user{i}")
    alice.lines()
    alice.send("WHO user*")
    assert [m.command for m in alice.messages()].count(RPL_WHOREPLY) == 3


def test_whois_channels_are_split_and_follow_multi_prefix() -> None:
    h = Harness(autojoin=[], max_channels_per_user=60)
    alice = h.user("alice")
    for i in range(40):
        alice.send(f"JOIN #channel-number-{i:02d}")
    alice.send("MODE #channel-number-00 +v alice")
    bob = h.user("bob")
    bob.send("WHOIS alice")
    lines = [m for m in bob.messages() if m.command == RPL_WHOISCHANNELS]
    assert len(lines) > 1 and all(len(m.to_line()) < 510 for m in lines)
    names = " ".join(m.params[-1] for m in lines).split()
    assert len(names) == 40 and "@#channel-number-00" in names, "highest prefix only without multi-prefix"


def test_an_ipv6_host_that_starts_with_a_colon_is_shown_as_a_valid_word() -> None:
    """A client from ::1 would make "::1" a middle parameter of WHO and WHOIS replies, which IRC cannot
    carry: it is shown as 0::1, the same address."""
    h = Harness()
    local = h.user("local", ip="::1")
    alice = h.user("alice")
    alice.send("WHO local")
    who = next(m for m in alice.messages() if m.command == "352")
    assert who.params[3] == "0::1"
    alice.send("WHOIS local")
    whois = next(m for m in alice.messages() if m.command == "311")
    assert whois.params[3] == "0::1"
    assert local.client.prefix == "local!~local@0::1"
