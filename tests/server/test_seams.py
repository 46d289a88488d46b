"""The seams (docs/architecture.md, "Seams"): the nick and channel registries' interface, and handlers that
work unchanged when a registry answers later, as a clustered one does.

``DeferredNickRegistry`` and ``DeferredChannelRegistry`` are a second implementation of each interface:
every call that may be answered later is queued and carried out (state change and answer, one step) only
when the test says, as a remote registry's answer arrives on a later loop pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salotto.config import load_config
from salotto.proto.modes import ModeChange
from salotto.proto.numerics import ERR_BADCHANNELKEY, ERR_BANNEDFROMCHAN, ERR_CHANNELISFULL, ERR_INVITEONLYCHAN
from salotto.server.channel import Channel
from salotto.server.client import Client
from salotto.server.registry import (
    JoinRequest,
    JoinResult,
    LocalChannelRegistry,
    LocalNickRegistry,
    ModeContext,
    ModeOutcome,
)
from salotto.server.state import Server
from tests.server.harness import Harness, MemoryConnection, User


class Later:
    """The answers on their way: run when the test says, in the order the calls were made."""

    def __init__(self) -> None:
        self.queue: list[Callable[[], None]] = []

    def run(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class DeferredNickRegistry(LocalNickRegistry):
    __slots__ = ("later",)

    def __init__(self, later: Later) -> None:
        super().__init__()
        self.later = later

    def claim(self, client: Client, nick_cf: str, done: Callable[[bool], None], *, nick: str = "") -> None:
        self.later.queue.append(lambda: LocalNickRegistry.claim(self, client, nick_cf, done, nick=nick))


class DeferredChannelRegistry(LocalChannelRegistry):
    __slots__ = ("later",)

    def __init__(self, later: Later) -> None:
        super().__init__()
        self.later = later

    def join(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None]) -> None:
        self.later.queue.append(lambda: LocalChannelRegistry.join(self, client, request, done))

    def change_modes(self, channel: Channel, client: Client, changes: list[ModeChange], context: ModeContext,
                     done: Callable[[list[ModeOutcome]], None]) -> None:
        local = LocalChannelRegistry.change_modes
        self.later.queue.append(lambda: local(self, channel, client, changes, context, done))


def _client(nick: str = "*", client_id: int = 1) -> Client:
    client = Client(MemoryConnection("127.0.0.1"), client_id, 0.0, 0.0)
    client.nick, client.user = nick, "~u"
    return client


def _answer(call: Callable[[Callable[[Any], None]], None]) -> Any:
    got: list[Any] = []
    call(got.append)
    assert len(got) == 1, "the local registries answer at once, exactly once"
    return got[0]


# -- the local registries --------------------------------------------------------------------------

def test_a_claimed_nick_is_refused_to_anyone_else_and_given_again_by_its_holder() -> None:
    nicks = LocalNickRegistry()
    alice, bob = _client(client_id=1), _client(client_id=2)
    assert _answer(lambda done: nicks.claim(alice, "alice", done)) is True
    alice.nick_cf = "alice"
    assert _answer(lambda done: nicks.claim(bob, "alice", done)) is False
    assert _answer(lambda done: nicks.claim(alice, "alice", done)) is True
    assert nicks.holder("alice") is alice


def test_a_rename_takes_the_new_nick_and_gives_the_old_one_up_in_one_step() -> None:
    nicks = LocalNickRegistry()
    alice, bob = _client(client_id=1), _client(client_id=2)
    nicks.claim(alice, "alice", lambda ok: None)
    alice.nick_cf = "alice"
    nicks.claim(bob, "bob", lambda ok: None)
    bob.nick_cf = "bob"
    assert _answer(lambda done: nicks.claim(alice, "bob", done)) is False  # refused: nothing changes
    assert nicks.snapshot() == {"alice": alice, "bob": bob}
    assert _answer(lambda done: nicks.claim(alice, "carol", done)) is True
    assert nicks.snapshot() == {"carol": alice, "bob": bob}


def test_release_lets_go_only_of_a_nick_the_client_holds() -> None:
    nicks = LocalNickRegistry()
    alice, bob = _client(client_id=1), _client(client_id=2)
    nicks.claim(alice, "alice", lambda ok: None)
    bob.nick_cf = "alice"  # bob tried alice and was refused, yet thinks it
    nicks.release(bob)
    assert nicks.holder("alice") is alice
    alice.nick_cf = "alice"
    nicks.release(alice)
    assert nicks.holder("alice") is None


def _request(name: str, *, key: str | None = None, bypass: bool = False, founder_op: bool = True,
             make: Callable[[Channel], None] | None = None) -> JoinRequest:
    def create() -> Channel:
        channel = Channel(name, name.lower(), 0)
        if make is not None:
            make(channel)
        return channel

    return JoinRequest(name, name.lower(), key, bypass=bypass, founder_op=founder_op, create=create)


def test_the_first_member_founds_the_channel_as_its_operator_and_a_second_join_changes_nothing() -> None:
    channels = LocalChannelRegistry()
    alice, bob = _client("alice", 1), _client("bob", 2)
    channel = _answer(lambda done: channels.join(alice, _request("#c"), done))
    assert isinstance(channel, Channel) and channels.get("#c") is channel
    assert _answer(lambda done: channels.join(bob, _request("#c"), done)) is channel
    assert (channel.status(alice), channel.status(bob)) == ("o", "")
    assert _answer(lambda done: channels.join(bob, _request("#c"), done)) is None
    assert alice.channels == {"#c": channel} and list(channel.roster()) == [alice, bob]


def test_a_join_is_checked_against_key_limit_invitation_and_bans_in_one_call() -> None:
    channels = LocalChannelRegistry()
    alice, bob = _client("alice", 1), _client("bob", 2)
    channel = _answer(lambda done: channels.join(alice, _request("#c"), done))
    assert isinstance(channel, Channel)
    channel.key = "sesame"
    assert _answer(lambda done: channels.join(bob, _request("#c", key="nope"), done)) == (
        ERR_BADCHANNELKEY, "#c", "Cannot join channel (+k)")
    channel.key, channel.limit = None, 1
    assert _answer(lambda done: channels.join(bob, _request("#c"), done))[0] == ERR_CHANNELISFULL
    channel.limit = None
    channel.modes.add("i")
    assert _answer(lambda done: channels.join(bob, _request("#c"), done))[0] == ERR_INVITEONLYCHAN
    channel.modes.discard("i")
    ctx = ModeContext(True, lambda nick: None, 10, 4, 0)
    channels.change_modes(channel, alice, [ModeChange(True, "b", "bob!*@*")], ctx, lambda outcomes: None)
    assert _answer(lambda done: channels.join(bob, _request("#c"), done))[0] == ERR_BANNEDFROMCHAN
    assert bob not in channel and bob.channels == {}
    # An operator's invitation lets past the ban; access (bypass) lets past everything.
    channels.invite(channel, bob.id, True, 10)
    assert _answer(lambda done: channels.join(bob, _request("#c"), done)) is channel
    assert channel.invited == {}
    carol = _client("carol", 3)
    channel.key = "sesame"
    assert _answer(lambda done: channels.join(carol, _request("#c", bypass=True), done)) is channel


def test_a_channel_a_refused_join_would_have_created_is_not_created() -> None:
    channels = LocalChannelRegistry()

    def keyed(channel: Channel) -> None:
        channel.key = "kept"  # a registered channel comes back with its key

    refused = _answer(lambda done: channels.join(_client("bob"), _request("#reg", make=keyed), done))
    assert refused[0] == ERR_BADCHANNELKEY and channels.get("#reg") is None and channels.count() == 0


def test_a_mode_command_is_applied_in_order_and_a_list_query_sees_the_list_at_its_point() -> None:
    channels = LocalChannelRegistry()
    alice = _client("alice", 1)
    channel = _answer(lambda done: channels.join(alice, _request("#c"), done))
    ctx = ModeContext(True, lambda nick: alice if nick == "alice" else None, 10, 4, 7)
    changes = [ModeChange(True, "b", None), ModeChange(True, "b", "x!*@*"), ModeChange(True, "b", None),
               ModeChange(True, "o", "nobody"), ModeChange(True, "k", "sesame")]
    outcomes = _answer(lambda done: channels.change_modes(channel, alice, changes, ctx, done))
    assert [o.listing for o in outcomes][:3:2] == [(), tuple(channel.bans)]
    assert [o.applied for o in outcomes] == [None, "x!*@*", None, None, "sesame"]
    assert outcomes[3].error is not None and outcomes[3].error[1] == "nobody"
    refused = _answer(lambda done: channels.change_modes(
        channel, alice, [ModeChange(False, "k", None)], ModeContext(False, ctx.resolve, 10, 4, 7), done))
    assert [o.refused for o in refused] == [True] and channel.key == "sesame"


# -- handlers with registries that answer later ----------------------------------------------------

def _server(deferred: bool, **overrides: Any) -> tuple[Harness, Later]:
    h = Harness(**overrides)
    later = Later()
    if deferred:
        h.server = Server(load_config(None, overrides), clock=h.clock, wallclock=lambda: h.wall[0],
                          nick_registry=DeferredNickRegistry(later),
                          channel_registry=DeferredChannelRegistry(later))
    return h, later


def _session(deferred: bool) -> tuple[list[str], list[str], Later, Harness]:
    """Two clients pipeline a registration, joins, a rename, modes and messages; the registries answer
    only after each batch was sent."""
    h, later = _server(deferred, autojoin=["#lobby"])
    alice, bob = h.connect(), h.connect()
    for line in ("NICK alice", "USER a 0 * :A", "JOIN #c,#c", "MODE #c +k sesame", "PING :one"):
        alice.send(line)
    later.run()
    for line in ("NICK bob", "USER b 0 * :B", "JOIN #c wrong", "JOIN #c sesame", "NICK robert", "PING :two"):
        bob.send(line)
    later.run()
    alice.send("PRIVMSG #c :hello")
    alice.send("MODE #c +o robert")
    later.run()
    return alice.lines(), bob.lines(), later, h


def test_handlers_work_unchanged_when_the_registries_answer_later() -> None:
    local_alice, local_bob, _, _ = _session(deferred=False)
    alice, bob, _, _ = _session(deferred=True)
    assert alice == local_alice and bob == local_bob
    # What the session shows, so that the comparison cannot pass on two empty transcripts.
    shown = ("475", "JOIN", "NICK", "PONG", "MODE", "PRIVMSG")
    assert [line.split()[1] for line in bob if line.split()[1] in shown] == [
        "JOIN", "475", "JOIN", "NICK", "PONG", "PRIVMSG", "MODE"]
    assert [line.split()[1] for line in alice if line.split()[1] in shown] == [
        "JOIN", "JOIN", "MODE", "PONG", "JOIN", "JOIN", "NICK", "MODE"]  # JOIN #c,#c joins once


def test_a_connection_s_lines_wait_while_a_registry_answer_is_on_its_way() -> None:
    h, later = _server(deferred=True)
    alice = _registered(h, later, "alice")
    alice.send("JOIN #c")
    alice.send("PING :after")
    assert alice.lines() == []  # not even the PONG: it answers a later line
    later.run()
    lines = alice.lines()
    assert [line.split()[1] for line in lines] == ["JOIN", "353", "366", "PONG"]


def test_a_nick_taken_while_the_claim_was_on_its_way_is_refused() -> None:
    h, later = _server(deferred=True)
    first, second = h.connect(), h.connect()
    first.send("NICK same")
    second.send("NICK same")  # the holder check passes: nobody holds it yet
    later.run()
    assert first.lines() == [] and first.client.nick == "same"
    assert [line.split()[1] for line in second.lines()] == ["433"] and second.client.nick == "*"
    assert h.server.find_user("same") is None and h.server.users == {"same": first.client}


def test_a_client_that_leaves_while_its_rename_is_on_its_way_holds_no_nick() -> None:
    h, later = _server(deferred=True)
    alice = _registered(h, later, "alice")
    alice.send("NICK alicia")
    h.server.disconnect(alice.client, "gone")
    later.run()
    assert h.server.users == {}


def test_a_client_that_leaves_while_its_claim_or_join_is_on_its_way_is_in_no_channel_and_holds_no_nick() -> None:
    h, later = _server(deferred=True)
    alice, bob = _registered(h, later, "alice"), h.connect()
    alice.send("JOIN #c")
    later.run()
    bob.send("NICK bob")
    h.server.disconnect(bob.client, "gone")
    carol = h.connect()
    carol.send("NICK carol")
    carol.send("USER c 0 * :C")
    later.run()
    carol.send("JOIN #c")
    h.server.disconnect(carol.client, "gone")
    later.run()
    channel = h.server.find_channel("#c")
    assert channel is not None and list(channel.roster()) == [alice.client]
    assert h.server.users == {"alice": alice.client}
    lines = alice.lines()
    assert ":carol!~c@127.0.0.1 JOIN #lobby" in lines  # registered, then left before its JOIN #c was in
    assert not [line for line in lines if line.startswith(":carol") and "#c" in line.split()]


def _registered(h: Harness, later: Later, nick: str) -> User:
    user = h.connect()
    user.send(f"NICK {nick}")
    user.send(f"USER {nick} 0 * :{nick}")
    later.run()
    assert user.client.registered
    user.lines()
    return user
