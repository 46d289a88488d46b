"""Property tests: whatever clients send, no exception escapes and the state stays consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salotto.proto.casemap import casefold
from salotto.server.state import Server
from tests.server.harness import Harness

NICKS = ["alice", "bob", "carol", "Alice", "[x]", "d-1"]
CHANNELS = ["#lobby", "#a", "#B", "#b", "#a,#b", "0", "bad", "#" + "x" * 60]
COMMANDS = [
    "MODE u0 +i", "MODE u1 -i+i",
    "NICK", "USER", "JOIN", "PART", "PRIVMSG", "NOTICE", "TAGMSG", "TOPIC", "MODE", "KICK", "INVITE",
    "NAMES", "LIST", "WHO", "WHOIS", "WHOWAS", "AWAY", "QUIT", "CAP", "PING", "PONG", "USERHOST",
    "ISON", "SETNAME", "OPER", "KILL", "LUSERS", "MOTD", "VERSION", "TIME", "ADMIN", "INFO", "FOO",
    "MONITOR +", "MONITOR -", "MONITOR", "MONITOR C", "MONITOR L", "MONITOR S",
]
params = st.sampled_from(
    NICKS + CHANNELS + ["+o", "-o", "+b", "+ov-k", "+l", "5", "-l", "+k", "key", "+imnst", "*", "LS",
                         "302", "REQ", "END", "message-tags echo-message", ":", "", ":hello world",
                         "u0,u1,alice", "U1", ",", "+", "-", "%tcuihsnfdlaor,42", "%", "o%na,1234"]
)
line = st.builds(
    lambda tags, cmd, ps: (tags + cmd + " " + " ".join(ps)).strip(),
    st.sampled_from(["", "@label=x ", "@+typing=active ", "@a=b\\sc;d "]),
    st.sampled_from(COMMANDS),
    st.lists(params, max_size=4),
)


def check_consistent(server: Server) -> None:
    for name_cf, channel in server.channels.items():
        assert channel.name_cf == name_cf == casefold(channel.name)
        assert channel.members or channel.permanent, "empty channels are removed"
        for member in channel.members:
            assert member in server.clients and member.registered
            assert member.channels.get(name_cf) is channel
    for client in server.clients:
        for name_cf, channel in client.channels.items():
            assert server.channels.get(name_cf) is channel and client in channel.members
    for nick_cf, client in server.users.items():
        assert client in server.clients and client.nick_cf == nick_cf
    for nick_cf, watchers in server.monitors.items():
        assert watchers, "index entries go with their last watcher"
        for watcher in watchers:
            assert watcher in server.clients and nick_cf in (watcher.monitoring or {})
    for client in server.clients:
        for nick_cf in client.monitoring or {}:
            assert client in server.monitors[nick_cf]
    assert server.internal_errors == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), line), max_size=40))
def test_random_command_sequences(script: list[tuple[int, str]]) -> None:
    h = Harness(autojoin=["#lobby"], max_targets=2)
    users = [h.connect() for _ in range(3)]
    for i, user in enumerate(users):
        if i < 2:
            user.send(f"NICK u{i}")
            user.send(f"USER u{i} 0 * :u")
    for who, text in script:
        user = users[who]
        if user.client.quitting:
            continue
        user.send(text)
        user.lines()
    check_consistent(h.server)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=10))
def test_random_bytes(chunks: list[bytes]) -> None:
    h = Harness()
    user = h.user("alice")
    other = h.user("bob")
    for chunk in chunks:
        for raw in chunk.split(b"\n"):
            if user.client.quitting:
                break
            h.server.handle_line(user.client, raw.rstrip(b"\r"))
    other.lines()
    check_consistent(h.server)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), line), max_size=30))
def test_derived_counts_match_the_state(script: list[tuple[int, str]]) -> None:
    """The counters LUSERS reads and each channel's privileged set agree with a full recount."""
    h = Harness(large_channel_threshold=1)
    users = [h.user(f"u{i}") for i in range(3)]
    for who, text in script:
        if not users[who].client.quitting:
            users[who].send(text)
    server = h.server
    registered = [c for c in server.clients if c.registered]
    assert server.registered_count == len(registered)
    assert server.invisible_count == sum(1 for c in registered if "i" in c.modes)
    assert server.opers == {c for c in registered if c.is_oper}
    for channel in server.channels.values():
        assert channel.privileged == {m for m, status in channel.members.items() if status}


MULTILINE_LINES = [
    "BATCH +r draft/multiline #lobby", "BATCH +r draft/multiline u1", "BATCH +s draft/multiline #a",
    "BATCH +r netsplit x y", "BATCH +r draft/multiline", "BATCH -r", "BATCH -s", "BATCH", "BATCH +",
    "@batch=r PRIVMSG #lobby :hello", "@batch=r PRIVMSG #lobby :", "@batch=r PRIVMSG u1 :hi",
    "@batch=r;draft/multiline-concat PRIVMSG #lobby :more", "@batch=r;draft/multiline-concat PRIVMSG #lobby :",
    "@batch=r NOTICE #lobby :n", "@batch=s PRIVMSG #a :x", "@batch=r TAGMSG #lobby", "@batch=r PRIVMSG",
    "@label=l;+draft/reply=x BATCH +r draft/multiline #lobby", "PRIVMSG #lobby :plain", "PING :p", "JOIN #a",
    "PART #lobby", "MODE #lobby +m", "CAP REQ :-batch", "CAP REQ :batch", "QUIT", "TICK",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1), st.sampled_from(MULTILINE_LINES)), max_size=40))
def test_random_multiline_sequences(script: list[tuple[int, str]]) -> None:
    """Whatever order batch lines come in, no exception escapes, and what a batch holds stays bounded."""
    h = Harness(multiline_max_lines=3, multiline_max_bytes=12, multiline_timeout_s=5)
    caps = ["draft/multiline", "batch", "message-tags", "echo-message", "labeled-response"]
    users = [h.user(f"u{i}", caps=caps) for i in range(2)]
    for who, text in script:
        user = users[who]
        if user.client.quitting:
            continue
        if text == "TICK":
            h.clock.now += 3
            h.server.tick()
        else:
            user.send(text)
        user.lines()
    check_consistent(h.server)
    server = h.server
    for client in server.clients:
        batch = client.batch
        if batch is not None:
            assert len(batch.lines) <= 3 and batch.size <= 12
            assert (client in server.open_batches) == (not batch.dropped)
    assert set(server.open_batches) <= server.clients
