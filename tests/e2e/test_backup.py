"""``salotto backup``, ``restore`` and ``export`` as an operator runs them, against a real running server.

Chat, back up while the server runs (with messages only in its history journals), stop it, restore into
a fresh data directory, start a server there and read everything back with CHATHISTORY; export the
history as JSON lines; and the refusals, each a one-line error.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import stat
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from salotto.proto import Message, parse
from salotto.storage.backup import backup
from salotto.storage.sqlite import DB_FILENAME, SqliteStorage
from tests.conftest import RunningServer, start_server, stop_server
from tests.entry_point import salotto_command
from tests.irc_client import RawClient

PASSWORD = "backup-password"
# Messages stay in the journal until the server stops (or a read asks for them): a backup must take them
# from there.
KEEP_IN_JOURNAL = ["--history-store-interval-s", "3600", "--history-store-max-messages", "1000000"]
HISTORY_CAPS = ["draft/chathistory", "batch", "message-tags", "server-time"]
UNLIMITED = ["--flood-burst-lines", "100000", "--flood-lines-per-s", "100000", "--flood-max-queued-lines", "100000"]
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def salotto(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed command, as an operator types it."""
    return subprocess.run([salotto_command(), *map(str, args)], capture_output=True, text=True, timeout=60)


def refused(*args: str | Path) -> str:
    """Run a command that must fail; its one-line error, without a traceback."""
    result = salotto(*args)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _server(tmp_path: Path, name: str, *extra: str) -> RunningServer:
    (tmp_path / name).mkdir(exist_ok=True)
    return start_server(tmp_path / name, *extra)


def _logged_in(server: RunningServer, nick: str) -> RawClient:
    """A client logged in to the account ``nick`` with SASL PLAIN, in #lobby, with the history caps."""
    client = RawClient(server.host, server.port)
    client.send("CAP LS 302")
    client.send("CAP REQ :sasl " + " ".join(HISTORY_CAPS))
    client.expect("CAP", p1="ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{nick}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("CAP END")
    client.expect("366", p1="#lobby")
    client.nick = nick
    return client


def _history(client: RawClient, target: str) -> list[Message]:
    client.send(f"CHATHISTORY LATEST {target} * 100")
    return [m for m in client.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]


def test_back_up_a_running_server_restore_elsewhere_and_read_it_all_back(tmp_path: Path) -> None:
    first = _server(tmp_path, "first", *KEEP_IN_JOURNAL)
    try:
        for nick in ("alice", "bob"):
            client = first.client()
            client.register(nick)
            client.send(f"REGISTER * * {PASSWORD}")
            client.expect("REGISTER", p0="SUCCESS")
            client.close()
        alice, bob = _logged_in(first, "alice"), _logged_in(first, "bob")
        for i in range(3):
            alice.send(f"PRIVMSG #lobby :stored {i}")
        assert len(_history(alice, "#lobby")) == 3  # a read stores what waits: these are in salotto.db
        for i in range(3):
            alice.send(f"PRIVMSG #lobby :journal only {i}")
        alice.send("PRIVMSG bob :just between us")
        seen = [bob.expect("PRIVMSG") for _ in range(7)]  # received: so in the journal, at least
        assert [m.params[1] for m in seen][-1] == "just between us"

        result = salotto("backup", "--data-dir", first.data_dir, tmp_path / "backup.db")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            f"backed up {first.data_dir} to {tmp_path / 'backup.db'}: 2 accounts, 0 registered channels, "
            "7 messages (4 of them from the history journals)"
        )
        assert stat.S_IMODE((tmp_path / "backup.db").stat().st_mode) == 0o600
        alice.send("PRIVMSG #lobby :after the backup")  # the server goes on; this one is not in the backup
        bob.expect("PRIVMSG")
        # The running server's own data is untouched: restoring over it is refused.
        error = refused("restore", "--data-dir", first.data_dir, "--force", tmp_path / "backup.db")
        assert error == f"salotto: a salotto server is running on {first.data_dir} (it holds history-0.journal): " \
                        "stop it first"
    finally:
        stop_server(first)

    fresh = tmp_path / "second" / "data"
    result = salotto("restore", "--data-dir", fresh, tmp_path / "backup.db")
    assert result.returncode == 0, result.stderr
    assert f"restored {tmp_path / 'backup.db'} into {fresh}: 2 accounts" in result.stdout
    assert f"serve --data-dir {fresh}" in result.stdout

    second = _server(tmp_path, "second")
    try:
        reader = _logged_in(second, "bob")  # the accounts came along: bob logs in with his password
        lobby = _history(reader, "#lobby")
        texts = [f"stored {i}" for i in range(3)] + [f"journal only {i}" for i in range(3)]
        assert [m.params[1] for m in lobby] == texts
        assert [m.tags["msgid"] for m in lobby] == [m.tags["msgid"] for m in seen[:6]]
        assert [m.tags["time"] for m in lobby] == [m.tags["time"] for m in seen[:6]]
        [private] = _history(reader, "alice")
        assert (private.params[1], private.tags["msgid"]) == ("just between us", seen[6].tags["msgid"])
        reader.close()

        # Export while this server runs.
        result = salotto("export", "--data-dir", second.data_dir, "#LOBBY")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["text"] for line in lines] == [m.params[1] for m in lobby]
        assert [line["msgid"] for line in lines] == [m.tags["msgid"] for m in lobby]
        assert [line["time"] for line in lines] == [m.tags["time"] for m in lobby]
        assert all(ISO_TIME.fullmatch(line["time"]) for line in lines)
        assert lines[0] == {
            "msgid": lobby[0].tags["msgid"], "time": lobby[0].tags["time"], "sender": lines[0]["sender"],
            "account": "alice", "command": "PRIVMSG", "text": "stored 0", "tags": {},
        }
        assert lines[0]["sender"].startswith("alice!")

        output = tmp_path / "private.jsonl"
        result = salotto("export", "--data-dir", second.data_dir, "--private", "Bob", "alice", "--output", output)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == f"exported 1 message of the conversation of Bob and alice to {output}"
        assert stat.S_IMODE(output.stat().st_mode) == 0o600
        [line] = [json.loads(text) for text in output.read_text().splitlines()]
        assert (line["text"], line["account"], line["msgid"]) == ("just between us", "alice", seen[6].tags["msgid"])
    finally:
        stop_server(second)


def test_a_backup_holds_every_message_delivered_before_it_began(tmp_path: Path) -> None:
    """Under a steady stream of messages, with the server storing batches and switching journals while
    the backups run: whatever a client had received when a backup began is in it."""
    server = _server(tmp_path, "live", *UNLIMITED, "--history-store-interval-s", "0.1")
    stop = threading.Event()
    received: list[str] = []

    def send() -> None:
        sender = server.client()
        sender.register("sender")
        sender.expect("366")
        i = 0
        while not stop.is_set():
            sender.send(f"PRIVMSG #lobby :{i}")
            i += 1
            if i % 50 == 0:
                time.sleep(0.005)
        sender.close()

    def observe(observer: RawClient) -> None:
        while not stop.is_set():
            line = observer.read_line(timeout_s=0.5)
            if line is not None and " PRIVMSG " in line:
                received.append(parse(line).tags["msgid"])

    observer = server.client()
    observer.register("observer", caps=["message-tags"])
    observer.expect("366")
    threads = [threading.Thread(target=send), threading.Thread(target=observe, args=(observer,))]
    for thread in threads:
        thread.start()
    try:
        from_journals = []
        for n in range(5):
            time.sleep(0.3)
            delivered = set(received)
            result = backup(server.data_dir, tmp_path / f"backup-{n}.db")
            from_journals.append(result.from_journals)
            stored = _msgids(tmp_path / f"backup-{n}.db")
            assert len(delivered) > 100 * (n + 1)
            missing = delivered - stored
            assert not missing, f"backup {n}: {len(missing)} of {len(delivered)} delivered messages missing"
        assert any(from_journals), from_journals
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        observer.close()
        stop_server(server)


def _msgids(path: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {m.msgid for m in SqliteStorage(db, readonly=True).latest("#lobby", 10**7)}


def test_backup_errors_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert refused("backup", "--data-dir", data, tmp_path / "b.db") == (
        f"salotto: no data directory {data} (set --data-dir, or data_dir in the --config file)")
    data.mkdir()
    assert refused("backup", "--data-dir", data, tmp_path / "b.db") == (
        f"salotto: no salotto database in {data} ({DB_FILENAME} is missing)")
    server = _server(tmp_path, "srv")
    stop_server(server)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert refused("backup", "--data-dir", server.data_dir, a_file / "b.db") == (
        f"salotto: cannot write {a_file / 'b.db'}: {a_file} is not a directory")
    assert refused("backup", "--data-dir", server.data_dir, a_file) == (
        f"salotto: {a_file} exists; use --force to overwrite it")
    assert refused("backup", "--data-dir", server.data_dir, "--force", server.data_dir / DB_FILENAME) == (
        f"salotto: {server.data_dir / DB_FILENAME} is one of the data directory's own files; write the backup "
        "elsewhere")
    config = tmp_path / "salotto.toml"
    config.write_text(f'data_dir = "{server.data_dir}"\n')
    result = salotto("backup", "--config", config, "--force", a_file)
    assert result.returncode == 0, result.stderr
    assert a_file.read_bytes().startswith(b"SQLite format 3\0")


def test_restore_and_export_errors_are_one_line(tmp_path: Path) -> None:
    server = _server(tmp_path, "srv", "--no-history-enabled")
    try:
        text = tmp_path / "notes.txt"
        text.write_text("not a database\n")
        assert refused("restore", "--data-dir", tmp_path / "x", text) == (
            f"salotto: {text} is not a salotto backup (not an SQLite database)")
        result = salotto("backup", "--data-dir", server.data_dir, tmp_path / "b.db")
        assert result.returncode == 0, result.stderr
        # A server with history off holds no journal; its database connection gives it away.
        assert refused("restore", "--data-dir", server.data_dir, "--force", tmp_path / "b.db") == (
            f"salotto: {server.data_dir / DB_FILENAME} is open in another process (a salotto server with "
            "history off, or a backup running): stop it first")
    finally:
        stop_server(server)
    assert refused("restore", "--data-dir", server.data_dir, tmp_path / "b.db") == (
        f"salotto: {server.data_dir} holds salotto data already (salotto.db); use --force to replace it")
    result = salotto("restore", "--data-dir", server.data_dir, "--force", tmp_path / "b.db")
    assert result.returncode == 0, result.stderr

    data = ["--data-dir", str(server.data_dir)]
    assert refused("export", *data) == (
        "salotto: name a channel, or a private conversation with --private ACCOUNT ACCOUNT")
    assert refused("export", *data, "#lobby", "--private", "a", "b").startswith("salotto: name a channel")
    assert refused("export", *data, "lobby") == (
        "salotto: 'lobby' is not a channel name (export a conversation with --private)")
    assert refused("export", *data, "#lobby", "--since", "yesterday").startswith(
        "salotto: --since 'yesterday' is not an ISO-8601 time")
    assert refused("export", "--data-dir", tmp_path / "nowhere", "#lobby").startswith(
        f"salotto: cannot read the history in {tmp_path / 'nowhere'}: no database")
    result = salotto("export", *data, "#nobody-here")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    out = tmp_path / "out.jsonl"
    out.write_text("mine")
    assert refused("export", *data, "#lobby", "--output", out) == (
        f"salotto: {out} exists; use --force to overwrite it")
    assert out.read_text() == "mine"


@pytest.mark.parametrize("command", ["backup", "restore", "export"])
def test_an_unknown_option_shows_the_commands_usage(command: str) -> None:
    result = salotto(command, "some.db", "--bogus")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"usage: salotto {command} [-h] [--config FILE] [--data-dir DIR]"), result.stderr
    assert lines[-1] == f"salotto {command}: error: unrecognized arguments: --bogus", result.stderr
    assert len(lines) <= 4, result.stderr
