"""The ``salotto`` command as a user runs it: bad settings, ``init``, ``mkpasswd``, ``--version``."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from salotto import __version__
from salotto.config import KEYS, load_config
from salotto.passwords import verify_password
from tests.entry_point import path_without_the_venv, salotto_command


def salotto(
    *args: str, stdin: str | None = None, cwd: Path | None = None, timeout_s: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salotto", *args], input=stdin, capture_output=True, text=True, timeout=timeout_s,
        cwd=cwd, env=env,
    )


def serve_fails(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``salotto serve`` with bad settings; return its one-line error after checking how it failed.

    Pass a listen address in ``args`` or the config file: a server that wrongly starts on the default
    port would serve until the timeout.
    """
    try:
        result = salotto("serve", *args, timeout_s=10, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"salotto serve {args} started instead of refusing") from None
    assert result.returncode != 0, f"the server started: {result.stdout!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "listening on" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "value", "key"),
    [
        ("--max-clients", "many", "max_clients"),  # wrong type
        ("--max-clients", "-5", "max_clients"),  # below the minimum
        ("--flood-lines-per-s", "fast", "flood_lines_per_s"),
        ("--max-line-bytes", "10", "max_line_bytes"),  # below the minimum
        ("--ping-timeout-s", "0", "ping_timeout_s"),
        ("--max-sendq-bytes", "-1", "max_sendq_bytes"),
        ("--listen", "localhost", "listen"),  # not HOST:PORT
        ("--listen", "127.0.0.1:70000", "listen"),
        ("--autojoin", "lobby", "autojoin"),  # not a channel name
        ("--motd-file", "/nonexistent/motd.txt", "motd_file"),
        ("--server-name", "not a host name", "server_name"),
    ],
)
def test_bad_flag_value_is_a_one_line_error_naming_key_flag_and_value(flag: str, value: str, key: str) -> None:
    listen = [] if flag == "--listen" else ["--listen", "127.0.0.1:0"]
    error = serve_fails(*listen, flag, value)
    assert error.startswith(f"salotto: config key '{key}' ({flag}): bad value "), error
    assert value in error, error


def test_bad_choice_flag_is_a_one_line_error() -> None:
    error = serve_fails("--listen", "127.0.0.1:0", "--log-format", "xml")
    assert "'log_format' (--log-format)" in error and "xml" in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('max_clients = "10"\n', ["max_clients", "'10'"]),  # wrong type
        ("max_clients = 10.0\n", ["max_clients", "10.0"]),
        ("max_connections_per_ip = 0\n", ["max_connections_per_ip", "0"]),  # below the minimum
        ('log_level = "loud"\n', ["log_level", "loud"]),  # not one of the choices
        ('log_format = "xml"\n', ["log_format", "xml"]),
        ('listen = ["127.0.0.1"]\n', ["listen", "127.0.0.1"]),
        ('listen = "127.0.0.1:6667"\n', ["listen", "127.0.0.1:6667"]),  # a string, not a list
        ('autojoin = ["#ok", "bad channel"]\n', ["autojoin", "bad channel"]),
        ('motd_file = "/nonexistent/motd.txt"\n', ["motd_file", "/nonexistent/motd.txt"]),
        ('no_such_key = "x"\n', ["no_such_key", "unknown"]),
        ("max_clients = \n", ["not valid TOML"]),
        ('[opers.admin]\nhostmask = "*!*@*"\n', ["opers.admin", "password_hash"]),
    ],
)
def test_bad_config_file_is_a_one_line_error(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text(text if "listen" in text else 'listen = ["127.0.0.1:0"]\n' + text)
    error = serve_fails("--config", str(path))
    for part in expected:
        assert part in error, error
    assert str(path) in error, error  # which file to fix


def test_missing_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    error = serve_fails("--listen", "127.0.0.1:0", "--config", str(missing))
    assert str(missing) in error and "cannot read" in error


def test_listen_address_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        error = serve_fails("--listen", address)
    assert "'listen' (--listen)" in error and address in error and "cannot listen" in error


def test_data_dir_that_is_a_file_is_a_one_line_error_naming_where_it_was_set(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory\n")
    no_web = ["--listen", "127.0.0.1:0", "--web-listen", ""]

    error = serve_fails(*no_web, "--data-dir", str(a_file))
    assert error == f"salotto: config key 'data_dir' (--data-dir): bad value '{a_file}' (it is a file, not a directory)"
    error = serve_fails(*no_web, "--data-dir", str(a_file / "salotto"))
    assert error == (f"salotto: config key 'data_dir' (--data-dir): bad value '{a_file / 'salotto'}' "
                     f"({a_file} is a file, not a directory)")

    config = tmp_path / "salotto.toml"
    config.write_text(f'data_dir = "{a_file}"\nlisten = ["127.0.0.1:0"]\nweb_listen = []\n')
    error = serve_fails("--config", str(config))
    assert error == (f"salotto: config key 'data_dir' (in {config}): bad value '{a_file}' "
                     "(it is a file, not a directory)")

    # Nobody set it: the default, under XDG_DATA_HOME.
    error = serve_fails(*no_web, env={**os.environ, "XDG_DATA_HOME": str(a_file)})
    assert error == (f"salotto: config key 'data_dir' (the default): bad value '{a_file / 'salotto'}' "
                     f"({a_file} is a file, not a directory)")


def test_web_listen_in_use_names_the_file_it_came_from(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = tmp_path / "salotto.toml"
        config.write_text(f'listen = ["127.0.0.1:0"]\nweb_listen = ["{address}"]\ndata_dir = "{tmp_path / "data"}"\n')
        error = serve_fails("--config", str(config))
    assert f"config key 'web_listen' (in {config}): bad value '{address}' (cannot listen" in error, error


def test_init_writes_a_commented_file_with_every_key(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    result = salotto("init", str(path))
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    text = path.read_text()
    assert tomllib.loads(text) == {}  # everything commented out: the defaults apply
    settings, _, opers_example = text.partition("[opers.")
    commented = re.findall(r"^# ([a-z_]+) = ", settings, flags=re.MULTILINE)
    assert commented == [key.name for key in KEYS]
    assert "password_hash" in opers_example

    # Uncommenting every setting as written gives the defaults back...
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", settings, flags=re.MULTILINE)
    assert set(tomllib.loads(uncommented)) == {key.name for key in KEYS}
    path.write_text(uncommented)
    assert _fields(load_config(str(path))) == {**_fields(load_config(None)), "source_file": str(path)}
    # ...and a changed value takes effect.
    path.write_text(text.replace("# max_targets = 4", "max_targets = 9"))
    assert load_config(str(path)).max_targets == 9


def _fields(config: object) -> dict[str, object]:
    """The settings that make two configs equal (not where each was set: that is for error messages)."""
    fields = config.__dataclass_fields__.values()  # type: ignore[attr-defined]
    return {f.name: getattr(config, f.name) for f in fields if f.compare}


def test_init_uncommented_file_serves(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    salotto("init", str(path))
    path.write_text(path.read_text().replace("# max_line_bytes = 512", "max_line_bytes = 10"))
    error = serve_fails("--listen", "127.0.0.1:0", "--config", str(path))
    assert "max_line_bytes" in error and "10" in error


def test_init_prints_a_serve_command_that_works_from_anywhere(tmp_path: Path) -> None:
    """With the venv not on PATH (./scripts/setup does not activate it) the printed command still runs."""
    env = {**os.environ, "PATH": path_without_the_venv()}
    path = tmp_path / "my settings.toml"
    result = subprocess.run([salotto_command(), "init", str(path)], capture_output=True, text=True, env=env,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout.split("start with: ", 1)[1])
    assert argv[-2:] == ["--config", str(path)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # --help: the command resolves and takes its arguments, without starting a server on the default port.
    check = subprocess.run([*argv, "--help"], capture_output=True, text=True, env=env, cwd=elsewhere, timeout=30)
    assert check.returncode == 0 and check.stdout.startswith("usage: salotto serve"), check.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text("# mine\n")
    result = salotto("init", str(path))
    assert result.returncode != 0
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "# mine\n"
    result = salotto("init", str(path), "--force")
    assert result.returncode == 0
    assert "max_sendq_bytes" in path.read_text()


def test_init_default_path_is_in_the_current_directory(tmp_path: Path) -> None:
    result = salotto("init", cwd=tmp_path)
    assert result.returncode == 0
    assert (tmp_path / "salotto.toml").is_file()


def test_mkpasswd_prints_a_hash_that_verifies() -> None:
    result = salotto("mkpasswd", stdin="s3cret pass\n")
    assert result.returncode == 0, result.stderr
    stored = result.stdout.strip()
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret pass", stored)
    assert not verify_password("s3cret pass ", stored)
    assert not verify_password("wrong", stored)


def test_mkpasswd_refuses_an_empty_password() -> None:
    result = salotto("mkpasswd", stdin="\n")
    assert result.returncode != 0
    assert "empty" in result.stderr and result.stdout == ""


def test_version() -> None:
    result = salotto("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"salotto {__version__}"


def test_help_calls_durations_seconds_and_rates_numbers() -> None:
    usage = subprocess.run([sys.executable, "-m", "salotto", "serve", "--help"], capture_output=True, text=True,
                           check=True).stdout
    assert "--ping-interval-s SECONDS" in usage and "--flood-lines-per-s NUMBER" in usage


def test_gui_help_lists_the_gui_options_through_the_installed_command() -> None:
    """``salotto gui --help`` as typed in a terminal: the gui's own usage and flags, no error."""
    result = subprocess.run([salotto_command(), "gui", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: salotto gui ")
    for option in ("--server HOST:PORT", "--nick NICK", "--tls", "--tls-insecure", "--font-size POINTS",
                   "--theme {light,dark}", "--join CHANNEL"):
        assert option in result.stdout, result.stdout
    assert result.stderr == ""


def test_gui_with_a_bad_server_is_a_one_line_error_through_the_installed_command() -> None:
    """``--server`` and ``--nick`` reach the client (it judges the address before opening any window)."""
    result = subprocess.run([salotto_command(), "gui", "--server", "host:port", "--nick", "erin"],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "DISPLAY": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == ("salotto gui: --server wants HOST[:PORT] or a comma-separated list of them: "
                                     "'host:port': the port must be a number from 1 to 65535, not 'port'")


@pytest.mark.parametrize("command", ["serve", "gui", "init", "mkpasswd"])
def test_unknown_option_shows_the_subcommands_usage(command: str) -> None:
    """``salotto serve --bogus``: the usage of ``serve``, not of ``salotto``, then the error; nothing else."""
    result = subprocess.run([salotto_command(), command, "--bogus"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"usage: salotto {command} "), result.stderr
    assert lines[-1] == f"salotto {command}: error: unrecognized arguments: --bogus", result.stderr
    assert len(lines) <= 4, result.stderr  # a short usage, not every one of serve's sixty settings


def test_serve_help_still_lists_every_setting() -> None:
    usage = subprocess.run([salotto_command(), "serve", "--help"], capture_output=True, text=True, check=True,
                           timeout=30).stdout
    assert usage.startswith("usage: salotto serve [-h] [--config FILE] [--SETTING VALUE ...]")
    for key in KEYS:
        assert key.flag in usage


# -- storage_backend = "postgresql" ---------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgresql_settings_errors_are_one_line_and_mask_the_password(tmp_path: Path) -> None:
    base = ["--listen", "127.0.0.1:0", "--web-listen", "", "--data-dir", str(tmp_path / "data")]
    error = serve_fails(*base, "--storage-backend", "postgresql")
    assert error.startswith("salotto: config key 'storage_backend' (--storage-backend): bad value 'postgresql' "
                            "(needs storage_url"), error
    error = serve_fails(*base, "--storage-backend", "postgresql", "--storage-url", "mysql://salotto:s3cret@h/db")
    assert error == ("salotto: config key 'storage_url' (--storage-url): bad value 'mysql://salotto:***@h/db' "
                     "(expected postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE)")
    # Nothing listens there: a one-line error naming the masked URL, then no start.
    url = f"postgresql://salotto:s3cret@127.0.0.1:{_closed_port()}/salotto"
    error = serve_fails(*base, "--storage-backend", "postgresql", "--storage-url", url)
    assert error.startswith("salotto: config key 'storage_url' (--storage-url): bad value "
                            "'postgresql://salotto:***@127.0.0.1:"), error
    assert "cannot connect to PostgreSQL at postgresql://salotto:***@127.0.0.1:" in error, error
    assert "Connection refused" in error, error
    assert "s3cret" not in error


def test_serve_on_postgresql_logs_the_url_masked_and_keeps_journals_in_data_dir(
    tmp_path: Path, postgres_url: str
) -> None:
    from salotto.storage import open_storage
    from tests.conftest import start_server, stop_server
    from tests.postgres import PASSWORD

    server = start_server(tmp_path, "--storage-backend", "postgresql", "--storage-url", postgres_url)
    try:
        client = server.client()
        client.register("alice")
        client.send("JOIN #pg")
        client.expect("366", p1="#pg")
        client.send("PRIVMSG #pg :stored in postgresql")
        client.send("PING :sync")
        client.expect("PONG")
        client.close()
    finally:
        stop_server(server)
    log = server.log()
    assert "(postgresql at postgresql://salotto:***@127.0.0.1:" in log, log
    assert PASSWORD not in log
    assert "salotto.db" not in {p.name for p in server.data_dir.iterdir()}  # no SQLite file: the journals stay
    storage = open_storage("postgresql", postgres_url, readonly=True)
    try:
        assert [m.text for m in storage.latest("#pg", 10)] == ["stored in postgresql"]
    finally:
        storage.close()


def test_export_reads_postgresql_and_backup_refuses_it(tmp_path: Path, postgres_url: str) -> None:
    from salotto.storage import HistoryMessage, open_storage
    from tests.postgres import PASSWORD

    storage = open_storage("postgresql", postgres_url)
    storage.append_messages([HistoryMessage("m1", "#pg", 1_700_000_000.5, "alice!u@h", "alice", "PRIVMSG", "hi")])
    storage.close()
    config = tmp_path / "salotto.toml"
    config.write_text(f'storage_backend = "postgresql"\nstorage_url = "{postgres_url}"\n'
                      f'data_dir = "{tmp_path / "data"}"\n')
    result = salotto("export", "--config", str(config), "#pg")
    assert result.returncode == 0, result.stderr
    assert '"text":"hi"' in result.stdout.replace(" ", ""), result.stdout
    for command in ("backup", "restore"):
        result = salotto(command, "--config", str(config), str(tmp_path / "b.db"))
        assert result.returncode == 2
        assert result.stderr.startswith(f"salotto: salotto {command} copies the SQLite database"), result.stderr
        assert "pg_dump" in result.stderr and PASSWORD not in result.stderr
