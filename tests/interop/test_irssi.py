"""irssi (Debian package ``irssi``), unchanged, in a tmux pane, against a real salotto server.

We type into irssi with ``tmux send-keys`` and read its screen with ``tmux capture-pane``; its autolog
files (one per channel or query) give a stable record of what it received.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.interop.conftest import LOBBY
from tests.interop.processes import require_binary
from tests.interop.waiting import WAIT_S, expect_from, read_text, wait_until
from tests.irc_client import RawClient

NICK = "irsuser"
PEER = "rawpeer"
# Wide enough that no line we look for on screen wraps.
PANE_COLUMNS, PANE_ROWS = 200, 50

# irssi's own settings. An unknown key makes irssi stop and ask whether to remove it, eating what we type.
# cmd_queue_speed 0 switches off its send queue (after a burst of 5 lines, one every 2.2 s, to dodge flood
# kicks), which would otherwise hold our first message behind its join burst for seconds.
CONFIG = """\
settings = {{
  core = {{ nick = "{nick}"; user_name = "{nick}"; real_name = "irssi interop"; }};
  "irc/core" = {{ cmd_queue_speed = "0msec"; }};
  "fe-common/core" = {{ autolog = "yes"; autolog_level = "all"; autolog_path = "{logs}/$0.log"; }};
}};
"""


class Irssi:
    """irssi running in a detached tmux session on a private tmux server."""

    def __init__(self, tmux: str, irssi: str, server: RunningServer, home: Path) -> None:
        self.home = home
        self.logs = home / "logs"
        home.mkdir()
        (home / "config").write_text(CONFIG.format(nick=NICK, logs=self.logs))
        # -L puts the socket in tmux's own directory, so a long tmp_path can't overflow sun_path.
        self._tmux = [tmux, "-L", f"salotto-interop-{uuid.uuid4().hex[:12]}", "-f", "/dev/null"]
        command = [irssi, f"--home={home}", f"--config={home / 'config'}",
                   "-c", server.host, "-p", str(server.port), "-n", NICK]
        self._run("new-session", "-d", "-s", "irc", "-x", str(PANE_COLUMNS), "-y", str(PANE_ROWS),
                  " ".join(command))

    def _run(self, *args: str) -> str:
        env = {**os.environ, "TERM": os.environ.get("TERM", "xterm-256color")}
        result = subprocess.run([*self._tmux, *args], capture_output=True, text=True, env=env,
                                timeout=WAIT_S, check=True)
        return result.stdout

    def type_line(self, text: str) -> None:
        """Type ``text`` and, once it shows on the input line (nothing else is reading keys), press Enter."""
        self._run("send-keys", "-t", "irc", "-l", text)
        wait_until(lambda: self._input_line().endswith(text), f"{text!r} on irssi's input line",
                   describe=self.screen)
        self._run("send-keys", "-t", "irc", "Enter")

    def _input_line(self) -> str:
        lines = self.screen().rstrip().splitlines()
        return lines[-1].rstrip() if lines else ""

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "irc")

    def log(self, target: str) -> Path:
        return self.logs / f"{target}.log"

    def wait_for_line(self, target: str, pattern: str) -> None:
        """Wait until ``target``'s autolog has a line matching ``pattern`` (after irssi's HH:MM)."""
        regex = re.compile(rf"^\d\d:\d\d {pattern}$", re.MULTILINE)
        path = self.log(target)
        wait_until(lambda: regex.search(read_text(path)) is not None, f"{pattern!r} in {path}",
                   describe=lambda: read_text(path) or self.screen())

    def wait_on_screen(self, text: str) -> None:
        wait_until(lambda: text in self.screen(), f"{text!r} on irssi's screen", describe=self.screen)

    def close(self) -> None:
        """Killing the tmux server hangs up irssi's terminal, and irssi exits."""
        subprocess.run([*self._tmux, "kill-server"], capture_output=True, timeout=WAIT_S, check=False)


@pytest.fixture
def irssi(salotto_server: RunningServer, tmp_path: Path) -> Iterator[Irssi]:
    tmux = require_binary("tmux", "tmux")
    binary = require_binary("irssi", "irssi")
    client = Irssi(tmux, binary, salotto_server, tmp_path / "irssi")
    try:
        yield client
    finally:
        client.close()


def wait_in_lobby(irssi: Irssi) -> None:
    irssi.wait_for_line(LOBBY, rf"-!- {NICK} \[~{NICK}@[^]]*\] has joined {LOBBY}")


def test_sits_in_lobby_and_talks_both_ways(irssi: Irssi, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(irssi)
    peer = raw_peer(PEER)
    irssi.wait_for_line(LOBBY, rf"-!- {PEER} \[~{PEER}@[^]]*\] has joined {LOBBY}")

    irssi.type_line(f"/window goto {LOBBY}")
    irssi.type_line("hello from irssi")
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from irssi")

    peer.send(f"PRIVMSG {LOBBY} :hello back, irssi")
    irssi.wait_for_line(LOBBY, rf"< {PEER}> hello back, irssi")
    irssi.wait_on_screen(f"< {PEER}> hello back, irssi")


def test_private_messages_both_ways(irssi: Irssi, raw_peer: Callable[[str], RawClient]) -> None:
    wait_in_lobby(irssi)
    peer = raw_peer(PEER)

    irssi.type_line(f"/msg {PEER} psst, raw peer")
    expect_from(peer, "PRIVMSG", NICK, p0=PEER, p1="psst, raw peer")

    peer.send(f"PRIVMSG {NICK} :psst yourself")
    irssi.wait_for_line(PEER, rf"<{PEER}> psst yourself")
    irssi.type_line(f"/window goto {PEER}")
    irssi.wait_on_screen(f"<{PEER}> psst yourself")


def test_a_multiline_message_arrives_as_its_lines(irssi: Irssi, salotto_server: RunningServer) -> None:
    # irssi has no draft/multiline: it gets the spec's fallback, each line a message, none blank.
    wait_in_lobby(irssi)
    sender = salotto_server.client()
    try:
        sender.register(PEER, caps=["draft/multiline", "batch"])
        sender.expect("JOIN", p0=LOBBY)
        irssi.wait_for_line(LOBBY, rf"-!- {PEER} \[~{PEER}@[^]]*\] has joined {LOBBY}")
        sender.send(f"BATCH +m1 draft/multiline {LOBBY}")
        sender.send(f"@batch=m1 PRIVMSG {LOBBY} :first line")
        sender.send(f"@batch=m1 PRIVMSG {LOBBY} :")
        sender.send(f"@batch=m1 PRIVMSG {LOBBY} :second line, sent ")
        sender.send(f"@batch=m1;draft/multiline-concat PRIVMSG {LOBBY} :in two pieces")
        sender.send("BATCH -m1")
        irssi.wait_for_line(LOBBY, rf"< {PEER}> in two pieces")
        said = re.findall(rf"^\d\d:\d\d < {PEER}> (.*)$", read_text(irssi.log(LOBBY)), re.MULTILINE)
        assert said == ["first line", "second line, sent ", "in two pieces"]
        irssi.type_line(f"/window goto {LOBBY}")
        irssi.wait_on_screen(f"< {PEER}> first line")
    finally:
        sender.close()
