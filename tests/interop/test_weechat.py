"""WeeChat (Debian package ``weechat-headless``), unchanged, against a real salotto server.

weechat-headless runs with its own home in tmp_path. We read what it received from its logger plugin's
files (flushed at once) and type into it through its fifo plugin (``buffer *text`` lines).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.interop.accounts import PASSWORD
from tests.interop.conftest import LOBBY
from tests.interop.processes import require_binary, stop_process
from tests.interop.waiting import expect_from, read_text, wait_until, write_fifo
from tests.irc_client import RawClient

NICK = "wee"
PEER = "rawpeer"
SERVER = "salotto"  # WeeChat's name for the server; its buffers are irc.<SERVER>.<channel or nick>


@dataclass
class WeeChat:
    process: subprocess.Popen[bytes]
    home: Path

    def log(self, target: str) -> Path:
        return self.home / "logs" / f"irc.{SERVER}.{target}.weechatlog"

    def server_log(self) -> Path:
        return self.home / "logs" / f"irc.server.{SERVER}.weechatlog"

    def wait_for_line(self, target: str, pattern: str) -> None:
        """Wait until ``target``'s log (``server``: the server buffer's) has a line matching ``pattern``
        (after the date and a tab)."""
        regex = re.compile(rf"^[\d: -]+\t{pattern}$", re.MULTILINE)
        path = self.server_log() if target == "server" else self.log(target)
        wait_until(lambda: regex.search(read_text(path)) is not None, f"{pattern!r} in {path}",
                   describe=lambda: read_text(path) or read_text(self.server_log()))

    def type_into(self, target: str, text: str) -> None:
        """Type ``text`` in the buffer of ``target`` (``server``: the server buffer) as a user would
        (through the fifo plugin)."""
        wait_until(lambda: any(self.home.glob("weechat_fifo_*")), "WeeChat's FIFO")
        buffer = f"irc.server.{SERVER}" if target == "server" else f"irc.{SERVER}.{target}"
        write_fifo(next(self.home.glob("weechat_fifo_*")), f"{buffer} *{text}\n")


@pytest.fixture
def weechat(salotto_server: RunningServer, tmp_path: Path) -> Iterator[WeeChat]:
    binary = require_binary("weechat-headless", "weechat-headless")
    home = tmp_path / "weechat"
    commands = [
        "/set logger.file.flush_delay 0",
        f"/server add {SERVER} {salotto_server.host}/{salotto_server.port} -notls",
        f"/set irc.server.{SERVER}.nicks {NICK}",
        f"/set irc.server.{SERVER}.username {NICK}",
        f'/set irc.server.{SERVER}.realname "weechat interop"',
        # WeeChat spaces out what it sends (2 s by default) to dodge flood kicks; tests needn't wait.
        f"/set irc.server.{SERVER}.anti_flood_prio_high 0",
        f"/set irc.server.{SERVER}.anti_flood_prio_low 0",
        f"/connect {SERVER}",
    ]
    # Headless WeeChat still writes terminal escapes to stdout; keep them out of pytest's output.
    with (tmp_path / "weechat.out").open("wb") as output:
        process = subprocess.Popen(
            [binary, "--dir", str(home), "--plugins", "irc,logger,fifo", "--run-command", ";".join(commands)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        yield WeeChat(process, home)
    finally:
        stop_process(process)


def wait_in_lobby(weechat: WeeChat) -> None:
    weechat.wait_for_line(LOBBY, rf"-->\t{NICK} .*\(~{NICK}@[^)]*\) has joined {LOBBY}")


def test_sits_in_lobby_and_talks_both_ways(weechat: WeeChat, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(weechat)
    peer = raw_peer(PEER)
    weechat.wait_for_line(LOBBY, rf"-->\t{PEER} .*has joined {LOBBY}")

    weechat.type_into(LOBBY, "hello from weechat")
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from weechat")

    peer.send(f"PRIVMSG {LOBBY} :hello back, weechat")
    weechat.wait_for_line(LOBBY, rf"{PEER}\thello back, weechat")


def test_private_messages_both_ways(weechat: WeeChat, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(weechat)
    peer = raw_peer(PEER)

    peer.send(f"PRIVMSG {NICK} :psst, weechat")
    weechat.wait_for_line(PEER, rf"{PEER}\tpsst, weechat")

    # WeeChat opened a private buffer for the peer; the user answers there.
    weechat.type_into(PEER, "psst yourself")
    expect_from(peer, "PRIVMSG", NICK, p0=PEER, p1="psst yourself")


def test_negotiates_capabilities(weechat: WeeChat) -> None:
    wait_in_lobby(weechat)
    server_log = read_text(weechat.server_log())
    enabled = re.search(r"client capability, enabled: (.*)$", server_log, re.MULTILINE)
    assert enabled is not None, server_log
    assert {"server-time", "message-tags", "extended-join", "multi-prefix"} <= set(enabled.group(1).split())


def test_notify_list_is_kept_with_monitor(weechat: WeeChat, salotto_server: RunningServer) -> None:
    # WeeChat's /notify uses MONITOR when ISUPPORT offers it, and polls with ISON once a minute if not
    # (too slow for these waits).
    wait_in_lobby(weechat)
    weechat.type_into("server", "/notify add latecomer")
    weechat.wait_for_line("server", r"--\tnotify: latecomer is offline")
    late = salotto_server.client()
    try:
        late.register("latecomer")
        weechat.wait_for_line("server", r"--\tnotify: latecomer \(~latecomer@127\.0\.0\.1\) has connected")
        late.send("QUIT :bye")
        weechat.wait_for_line("server", r"--\tnotify: latecomer has quit")
    finally:
        late.close()


def test_who_with_whox_fields_shows_account_and_away(weechat: WeeChat, raw_peer: Callable[[str], RawClient]) -> None:
    # WeeChat sends "WHO #lobby %cuhsnfdar" itself on join (quietly, to fill its nicklist); asked by the
    # user, it shows the 354 rows: [channel] nick [account] (user@host) flags hops (realname).
    wait_in_lobby(weechat)
    peer = raw_peer(PEER)
    peer.send(f"REGISTER * * {PASSWORD}")
    peer.expect("REGISTER", p0="SUCCESS")
    peer.send("AWAY :lunch")
    peer.expect("306")
    # On two nodes, WeeChat's node hears of the peer's account and away a moment after the peer's own: ask
    # again if the first answer came before that.
    for attempt in range(3):
        weechat.type_into(LOBBY, f"/who {LOBBY} %cuhsnfdar")
        try:
            weechat.wait_for_line(
                "server", rf"--\t\[{LOBBY}\] {PEER} \[{PEER}\] \(~{PEER}@127\.0\.0\.1\) G 0 \({PEER} test\)")
            break
        except AssertionError:
            if attempt == 2:
                raise
    weechat.wait_for_line("server", rf"--\t\[{LOBBY}\] {NICK} \[0\] \(~{NICK}@127\.0\.0\.1\) H 0 \(weechat interop\)")


def test_a_multiline_message_arrives_as_its_lines(weechat: WeeChat, salotto_server: RunningServer) -> None:
    # WeeChat 3.8 has no draft/multiline: it gets the spec's fallback, each line a message (none blank);
    # a client with the capability gets the same message as one batch.
    wait_in_lobby(weechat)
    caps = ["draft/multiline", "batch", "message-tags"]
    sender = salotto_server.client()
    capable = salotto_server.client()
    try:
        sender.register(PEER, caps=caps)
        sender.expect("JOIN", p0=LOBBY)
        capable.register("capable", caps=caps)
        capable.expect("366", p1=LOBBY)
        weechat.wait_for_line(LOBBY, rf"-->\tcapable .*has joined {LOBBY}")
        sender.send(f"BATCH +m1 draft/multiline {LOBBY}")
        for line in ["first line", "", "second line, sent in", "@ two pieces", "last line"]:
            concat = ";draft/multiline-concat" if line.startswith("@") else ""
            sender.send(f"@batch=m1{concat} PRIVMSG {LOBBY} :{line.lstrip('@')}")
        sender.send("BATCH -m1")

        start = expect_from(capable, "BATCH", PEER)
        inner = capable.lines_until("BATCH")
        assert start.params[1:] == ["draft/multiline", LOBBY] and "msgid" in start.tags
        assert [(m.params[1], "draft/multiline-concat" in m.tags) for m in inner[:-1]] == [
            ("first line", False), ("", False), ("second line, sent in", False), (" two pieces", True),
            ("last line", False)]

        weechat.wait_for_line(LOBBY, rf"{PEER}\tlast line")
        said = re.findall(rf"^[\d: -]+\t{PEER}\t(.*)$", read_text(weechat.log(LOBBY)), re.MULTILINE)
        assert said == ["first line", "second line, sent in", " two pieces", "last line"]
    finally:
        sender.close()
        capable.close()
