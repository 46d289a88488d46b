"""Real IRC clients log in to salotto accounts with their own SASL: WeeChat with SCRAM-SHA-256, irssi
with PLAIN (Debian's irssi 1.4 has no SCRAM). The account is registered first from a raw socket;
WHOIS from a raw peer then shows the client logged in (330)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RunningServer
from tests.interop.accounts import PASSWORD, logged_in_as, register_account
from tests.interop.processes import require_binary, stop_process
from tests.interop.test_irssi import PANE_COLUMNS, PANE_ROWS, Irssi
from tests.interop.waiting import wait_until


def _wait_logged_in(server: RunningServer, nick: str, account: str, describe: Callable[[], str]) -> None:
    wait_until(lambda: logged_in_as(server, nick) == account, f"{nick} logged in as {account}",
               describe=describe)


def test_weechat_logs_in_with_scram_sha_256(salotto_server: RunningServer, tmp_path: Path) -> None:
    binary = require_binary("weechat-headless", "weechat-headless")
    register_account(salotto_server, "weeacct")
    home = tmp_path / "weechat"
    server = "salotto"
    commands = [
        f"/server add {server} {salotto_server.host}/{salotto_server.port} -notls",
        f"/set irc.server.{server}.nicks weesasl",
        f"/set irc.server.{server}.sasl_mechanism scram-sha-256",
        f"/set irc.server.{server}.sasl_username weeacct",
        f"/set irc.server.{server}.sasl_password {PASSWORD}",
        f"/set irc.server.{server}.sasl_fail disconnect",
        f"/connect {server}",
    ]
    with (tmp_path / "weechat.out").open("wb") as output:
        process = subprocess.Popen(
            [binary, "--dir", str(home), "--plugins", "irc,logger", "--run-command", ";".join(commands)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        _wait_logged_in(salotto_server, "weesasl", "weeacct", lambda: salotto_server.log()[-2000:])
        assert "SASL SCRAM-SHA-256 login to weeacct" in salotto_server.log()
    finally:
        stop_process(process)


class _SaslIrssi(Irssi):
    """irssi connecting through a chatnet with SASL PLAIN (the settings live in its config file)."""

    def __init__(self, tmux: str, irssi: str, server: RunningServer, home: Path, account: str) -> None:
        self.home = home
        self.logs = home / "logs"
        home.mkdir()
        (home / "config").write_text(f"""\
servers = (
  {{ address = "{server.host}"; chatnet = "salotto"; port = "{server.port}"; use_tls = "no"; autoconnect = "yes"; }}
);
chatnets = {{
  salotto = {{ type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "{account}"; sasl_password = "{PASSWORD}"; }};
}};
settings = {{
  core = {{ nick = "irssasl"; user_name = "irssasl"; real_name = "irssi sasl"; }};
}};
""")
        self._tmux = [tmux, "-L", f"salotto-interop-{uuid.uuid4().hex[:12]}", "-f", "/dev/null"]
        command = [irssi, f"--home={home}", f"--config={home / 'config'}"]
        self._run("new-session", "-d", "-s", "irc", "-x", str(PANE_COLUMNS), "-y", str(PANE_ROWS),
                  " ".join(command))


def test_irssi_logs_in_with_sasl_plain(salotto_server: RunningServer, tmp_path: Path) -> None:
    tmux = require_binary("tmux", "tmux")
    binary = require_binary("irssi", "irssi")
    register_account(salotto_server, "irsacct")
    client = _SaslIrssi(tmux, binary, salotto_server, tmp_path / "irssi", "irsacct")
    try:
        _wait_logged_in(salotto_server, "irssasl", "irsacct", client.screen)
        assert "SASL PLAIN login to irsacct" in salotto_server.log()
    finally:
        client.close()
