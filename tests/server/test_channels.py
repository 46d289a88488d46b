"""JOIN, PART, TOPIC, NAMES, LIST, INVITE, KICK and the quiet rule of large channels."""

from __future__ import annotations

from salotto.proto import parse
from salotto.proto.numerics import (
    ERR_BADCHANNELKEY,
    ERR_BANNEDFROMCHAN,
    ERR_CHANNELISFULL,
    ERR_CHANOPRIVSNEEDED,
    ERR_INVITEONLYCHAN,
    ERR_NOSUCHCHANNEL,
    ERR_NOTONCHANNEL,
    ERR_TOOMANYCHANNELS,
    ERR_TOOMANYTARGETS,
    ERR_USERNOTINCHANNEL,
    RPL_ENDOFNAMES,
    RPL_INVITING,
    RPL_LIST,
    RPL_NAMREPLY,
    RPL_TOPIC,
    RPL_TOPICWHOTIME,
)
from tests.server.harness import Harness


def _names(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        msg = parse(line)
        if msg.command == RPL_NAMREPLY:
            out += msg.params[-1].split()
    return out


def test_first_joiner_is_operator_and_sees_names() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #Python")
    lines = alice.lines()
    assert lines[0] == ":alice!~alice@127.0.0.1 JOIN #Python"
    assert _names(lines) == ["@alice"]
    bob.send("JOIN #python")
    lines = bob.lines()
    assert lines[0] == ":bob!~bob@127.0.0.1 JOIN #Python"
    assert _names(lines) == ["@alice", "bob"]
    assert alice.lines() == [":bob!~bob@127.0.0.1 JOIN #Python"]


def test_join_several_with_keys_and_join_zero() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #a,#b")
    alice.send("MODE #b +k sesame")
    bob = h.user("bob")
    bob.send("JOIN #a,#b")
    assert ERR_BADCHANNELKEY in bob.numerics()
    bob.send("JOIN #b sesame")
    assert "JOIN" in bob.commands()
    bob.send("JOIN 0")
    assert bob.commands() == ["PART", "PART"]
    assert bob.client.channels == {}


def test_invalid_channel_name_and_too_many_targets() -> None:
    h = Harness(autojoin=[], max_targets=2)
    alice = h.user("alice")
    alice.send("JOIN lobby")
    alice.send("JOIN #a,#b,#c")
    assert alice.numerics() == [ERR_NOSUCHCHANNEL, ERR_TOOMANYTARGETS]
    assert alice.client.channels == {}


def test_channels_per_user_limit() -> None:
    h = Harness(autojoin=[], max_channels_per_user=2)
    alice = h.user("alice")
    alice.send("JOIN #a")
    alice.send("JOIN #b")
    alice.lines()
    alice.send("JOIN #c")
    assert alice.numerics() == [ERR_TOOMANYCHANNELS]


def test_part_with_reason_and_empty_channel_disappears() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #room")
    bob.send("JOIN #room")
    alice.lines()
    bob.send("PART #room :bye all")
    assert alice.lines() == [":bob!~bob@127.0.0.1 PART #room :bye all"]
    bob.send("PART #room")
    assert bob.numerics()[-1] == ERR_NOTONCHANNEL
    alice.send("PART #room")
    assert h.server.find_channel("#room") is None


def test_topic_set_query_and_protection() -> None:
    h = Harness()
    h.wall[0] = 1_700_000_123
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #t")
    bob.send("JOIN #t")
    alice.lines()
    bob.lines()
    bob.send("TOPIC #t :bob's topic")
    assert bob.numerics() == [ERR_CHANOPRIVSNEEDED]
    alice.send("TOPIC #t :Welcome to #t")
    assert bob.lines() == [":alice!~alice@127.0.0.1 TOPIC #t :Welcome to #t"]
    bob.send("TOPIC #t")
    replies = bob.messages()
    assert [m.command for m in replies] == [RPL_TOPIC, RPL_TOPICWHOTIME]
    assert replies[0].params[-1] == "Welcome to #t" and replies[1].params[-1] == "1700000123"
    carol = h.user("carol")
    carol.send("JOIN #t")
    assert RPL_TOPIC in carol.numerics()


def test_topic_length_limit_truncates() -> None:
    h = Harness(topic_max_len=10)
    alice = h.user("alice")
    alice.send("JOIN #t")
    alice.send("TOPIC #t :" + "x" * 50)
    assert h.server.find_channel("#t").topic == "x" * 10


def test_names_with_multi_prefix_and_userhost_in_names() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #c")
    alice.send("MODE #c +v alice")
    bob = h.user("bob", caps=["multi-prefix", "userhost-in-names"])
    bob.send("JOIN #c")
    assert _names(bob.lines()) == ["@+alice!~alice@127.0.0.1", "bob!~bob@127.0.0.1"]
    carol = h.user("carol")
    carol.send("NAMES #c")
    assert _names(carol.lines()) == ["@alice"] or _names(carol.lines()) == []


def test_names_of_nonmember_and_end_marker() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #c")
    carol = h.user("carol")
    carol.send("NAMES #c")
    lines = carol.lines()
    assert _names(lines) == ["@alice"] and parse(lines[-1]).command == RPL_ENDOFNAMES
    alice.send("MODE #c +s")
    carol.send("NAMES #c")
    assert carol.numerics() == [RPL_ENDOFNAMES], "secret channel members are hidden"


def test_list_hides_secret_channels() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #open")
    alice.send("TOPIC #open :all welcome")
    alice.send("JOIN #hidden")
    alice.send("MODE #hidden +s")
    bob = h.user("bob")
    bob.send("LIST")
    entries = [m for m in bob.messages() if m.command == RPL_LIST]
    assert [(m.params[1], m.params[2]) for m in entries] == [("#open", "1")]
    assert entries[0].params[3].endswith("all welcome")


def test_invite_only_channel_and_invite_notify() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice", caps=["invite-notify"])
    alice.send("JOIN #club")
    alice.send("MODE #club +i")
    op2 = h.user("dave", caps=["invite-notify"])
    alice.send("INVITE dave #club")
    op2.send("JOIN #club")
    alice.send("MODE #club +o dave")
    alice.lines()
    bob = h.user("bob")
    bob.send("JOIN #club")
    assert bob.numerics() == [ERR_INVITEONLYCHAN]
    alice.send("INVITE bob #club")
    assert alice.numerics() == [RPL_INVITING]
    assert bob.lines() == [":alice!~alice@127.0.0.1 INVITE bob #club"]
    assert ":alice!~alice@127.0.0.1 INVITE bob #club" in op2.lines()
    bob.send("JOIN #club")
    assert "JOIN" in bob.commands()


def test_key_limit_and_ban_enforced() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #c")
    alice.send("MODE #c +l 2")
    bob = h.user("bob")
    bob.send("JOIN #c")
    carol = h.user("carol")
    carol.send("JOIN #c")
    assert carol.numerics() == [ERR_CHANNELISFULL]
    alice.send("MODE #c -l")
    alice.send("MODE #c +b carol")
    carol.send("JOIN #c")
    assert carol.numerics() == [ERR_BANNEDFROMCHAN]
    alice.send("MODE #c +e carol!*@*")
    carol.send("JOIN #c")
    assert "JOIN" in carol.commands()


def test_kick() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    bob.send("JOIN #c")
    bob.lines()
    bob.send("KICK #c alice")
    assert bob.numerics() == [ERR_CHANOPRIVSNEEDED]
    alice.send("KICK #c nobody")
    alice.lines()
    alice.send("KICK #c bob :behave")
    assert bob.lines() == [":alice!~alice@127.0.0.1 KICK #c bob :behave"]
    assert "#c" not in bob.client.channels
    alice.send("KICK #c carol")
    assert alice.numerics() == [ERR_USERNOTINCHANNEL]


def test_kick_reason_length_limit() -> None:
    h = Harness(autojoin=[], kick_max_len=5)
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    bob.send("JOIN #c")
    bob.lines()
    alice.send("KICK #c bob :" + "r" * 40)
    assert bob.lines() == [":alice!~alice@127.0.0.1 KICK #c bob :rrrrr"]


def test_large_channel_joins_parts_quits_only_to_operators() -> None:
    h = Harness(autojoin=[], large_channel_threshold=3)
    op = h.user("op")
    op.send("JOIN #big")
    members = [h.user(f"m{i}") for i in range(3)]
    for member in members:
        member.send("JOIN #big")
    op.lines()
    first = members[0]
    first.lines()
    late = h.user("late")
    late.send("JOIN #big")
    assert first.lines() == [], "regular members are not told of joins above the threshold"
    assert op.lines() == [":late!~late@127.0.0.1 JOIN #big"]
    assert _names(late.lines()) == ["@op", "late"], "NAMES in a large channel: ops, voiced, self"
    late.send("PRIVMSG #big :hello")
    assert first.lines() == [":late!~late@127.0.0.1 PRIVMSG #big :hello"]
    op.lines()
    late.send("QUIT :bye")
    assert first.lines() == []
    assert op.lines() == [":late!~late@127.0.0.1 QUIT :Quit: bye"]


def test_small_channel_everyone_sees_joins() -> None:
    h = Harness(autojoin=["#lobby"], large_channel_threshold=3)
    a = h.user("a")
    h.user("b")
    assert a.lines() == [":b!~b@127.0.0.1 JOIN #lobby"]


def test_a_members_invitation_does_not_lift_a_ban() -> None:
    h = Harness(autojoin=[])
    op = h.user("op")
    friend = h.user("friend")
    troll = h.user("troll")
    op.send("JOIN #c")
    friend.send("JOIN #c")
    op.send("MODE #c +b troll!*@*")
    friend.send("INVITE troll #c")
    troll.lines()
    troll.send("JOIN #c")
    assert troll.numerics() == [ERR_BANNEDFROMCHAN]
    op.send("INVITE troll #c")
    troll.send("JOIN #c")
    assert "JOIN" in troll.commands(), "an operator's invitation does"


def test_an_invitation_belongs_to_the_connection_not_the_nick() -> None:
    h = Harness(autojoin=[])
    op = h.user("op")
    op.send("JOIN #club")
    op.send("MODE #club +i")
    guest = h.user("guest")
    op.send("INVITE guest #club")
    guest.send("QUIT")
    other = h.user("guest")
    other.send("JOIN #club")
    assert other.numerics() == [ERR_INVITEONLYCHAN]


def test_large_channel_everyone_sees_a_voiced_member_leave() -> None:
    h = Harness(autojoin=[], large_channel_threshold=2)
    op = h.user("op")
    op.send("JOIN #big")
    regular = h.user("regular")
    regular.send("JOIN #big")
    voiced = h.user("voiced")
    voiced.send("JOIN #big")
    op.send("MODE #big +v voiced")
    h.user("more").send("JOIN #big")
    regular.lines()
    voiced.send("PART #big")
    assert regular.lines() == [":voiced!~voiced@127.0.0.1 PART #big"]


def test_away_users_joining_are_announced_to_away_notify_clients() -> None:
    h = Harness(autojoin=[])
    watcher = h.user("watcher", caps=["away-notify"])
    watcher.send("JOIN #c")
    away = h.user("away")
    away.send("AWAY :lunch")
    watcher.lines()
    away.send("JOIN #c")
    assert watcher.lines() == [":away!~away@127.0.0.1 JOIN #c", ":away!~away@127.0.0.1 AWAY :lunch"]
