"""The ``salotto`` command: serve, init, mkpasswd, gui, backup, restore, export."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salotto import __version__
from salotto.clients.tk import options as gui_options
from salotto.config import KEYS, ConfigError, bad_value, default_template, load_config

if TYPE_CHECKING:
    from salotto.storage.backup import Contents

__all__ = ["main", "salotto_command"]


def salotto_command() -> str:
    """How to run this same salotto from the user's shell, for the commands we print.

    ``salotto`` when that name on PATH is this program. Otherwise (``./scripts/serve`` starts
    ``.venv/bin/salotto``, which is not on PATH unless the venv is activated) the absolute path of the
    running command, or this Python with ``-m salotto``: both work from any directory.
    """
    on_path = shutil.which("salotto")
    running = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.splitext(os.path.basename(running))[0] == "salotto" and os.path.isfile(running):
        if on_path is not None and os.path.samefile(on_path, running):
            return "salotto"
        return shlex.quote(running)
    # python -m salotto: the script on PATH may belong to another Python; this Python is sure to work.
    if on_path is not None and os.path.dirname(os.path.abspath(on_path)) == os.path.dirname(sys.executable):
        return "salotto"
    return f"{shlex.quote(sys.executable)} -m salotto"


_METAVARS: dict[type, str] = {int: "N", float: "NUMBER", str: "TEXT"}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file (salotto init writes one)")
    for key in KEYS:
        kwargs: dict[str, Any] = {"dest": key.name, "default": None, "help": key.help}
        if key.kind is list:
            kwargs["action"] = "append"
            kwargs["metavar"] = "VALUE"
            kwargs["help"] += " Repeat for several; '' for none."
        elif key.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif key.choices:
            # No argparse choices=: a bad value gets the same one-line error as in the file.
            kwargs["metavar"] = "{" + ",".join(key.choices) + "}"
        else:
            seconds = key.name.endswith("_s") and not key.name.endswith("_per_s")  # not a rate
            kwargs["metavar"] = "SECONDS" if seconds else _METAVARS[key.kind]
        parser.add_argument(key.flag, **kwargs)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in KEYS:
        value = getattr(args, key.name)
        if value is None:
            continue
        if key.kind is list:
            value = [item for item in value if item]
        elif key.kind is int:
            try:
                value = int(value)
            except ValueError:
                raise bad_value(key.name, value, "expected an integer", key.flag) from None
        elif key.kind is float:
            try:
                value = float(value)
            except ValueError:
                raise bad_value(key.name, value, "expected a number", key.flag) from None
        out[key.name] = value
    return out


def _serve(args: argparse.Namespace) -> int:
    from salotto.logsetup import setup_logging
    from salotto.runtime import serve_forever

    try:
        overrides = _overrides(args)
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"salotto: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    return serve_forever(config, overrides)


def _init(args: argparse.Namespace) -> int:
    if args.systemd:
        return _init_systemd(args)
    if args.output is not None or args.user is not None or args.config is not None:
        print("salotto: --output, --user and --config go with --systemd", file=sys.stderr)
        return 2
    path = args.path or "salotto.toml"
    if os.path.exists(path) and not args.force:
        print(f"salotto: {path} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(default_template())
    print(f"wrote {path}; start with: {salotto_command()} serve --config {shlex.quote(path)}")
    return 0


def _init_systemd(args: argparse.Namespace) -> int:
    from salotto.service import DEFAULT_CONFIG, entry_point, hidden_from_service, unit

    if args.path is not None:
        print(f"salotto: with --systemd, the unit goes to stdout or to --output FILE, not to {args.path}",
              file=sys.stderr)
        return 2
    if args.user is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", args.user):
        print(f"salotto: --user {args.user!r} is not a system user name", file=sys.stderr)
        return 2
    config_path = os.path.abspath(args.config) if args.config else DEFAULT_CONFIG
    command = entry_point()
    text = unit(command, config_path, args.user)
    for path in hidden_from_service(command):
        print(f"salotto: warning: the service could not run {path}: ProtectHome=yes hides /home, /root and "
              "/run/user from it. Install salotto in a virtual environment outside them, made with a Python "
              "outside them too (/usr/bin/python3 -m venv /opt/salotto; see docs/operations.md).", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if os.path.exists(args.output) and not args.force:
        print(f"salotto: {args.output} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"salotto: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}; install it with: sudo cp {shlex.quote(args.output)} /etc/systemd/system/"
          "salotto.service && sudo systemctl daemon-reload && sudo systemctl enable --now salotto")
    return 0


def _data_dir(args: argparse.Namespace, command: str) -> Path:
    """The data directory ``serve`` would use with the same --config and --data-dir (ConfigError if the
    config does not load, or keeps its database in PostgreSQL: backup and restore copy SQLite's file)."""
    overrides = {} if args.data_dir is None else {"data_dir": args.data_dir}
    config = load_config(args.config, overrides)
    if config.storage_backend != "sqlite":
        from salotto.storage import describe_storage

        raise ConfigError(f"salotto {command} copies the SQLite database, and storage_backend is "
                          f"{config.storage_backend} ({describe_storage(config)}): use pg_dump and pg_restore "
                          "instead (docs/user-guide.md, \"Storing in PostgreSQL\")")
    return Path(config.data_dir)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _describe(contents: Contents) -> str:
    return (f"{_plural(contents.accounts, 'account')}, {_plural(contents.channels, 'registered channel')}, "
            f"{_plural(contents.messages, 'message')}")


def _backup(args: argparse.Namespace) -> int:
    from salotto.storage.backup import BackupError, backup

    try:
        data_dir = _data_dir(args, "backup")
        result = backup(data_dir, Path(args.file), force=args.force)
    except (ConfigError, BackupError) as exc:
        print(f"salotto: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    journals = f" ({result.from_journals} of them from the history journals)" if result.from_journals else ""
    upgraded = (f"; brought from schema version {result.source_version} to {result.contents.schema_version}"
                if result.source_version != result.contents.schema_version else "")
    print(f"backed up {data_dir} to {args.file}: {_describe(result.contents)}{journals}{upgraded}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from salotto.storage.backup import BackupError, restore

    try:
        data_dir = _data_dir(args, "restore")
        contents = restore(Path(args.file), data_dir, force=args.force)
    except (ConfigError, BackupError) as exc:
        print(f"salotto: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    flags = "".join(f" --{name.replace('_', '-')} {shlex.quote(value)}"
                    for name, value in (("config", args.config), ("data_dir", args.data_dir)) if value)
    print(f"restored {args.file} into {data_dir}: {_describe(contents)}. "
          f"Start the server with: {salotto_command()} serve{flags}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from salotto.proto.casemap import casefold
    from salotto.storage import StorageError, conversation_key, describe_storage, open_storage, storage_location
    from salotto.storage.backup import BackupError, journal_messages
    from salotto.storage.export import export_history, parse_time

    def fail(message: str, status: int = 1) -> int:
        print(f"salotto: {message}", file=sys.stderr)
        return status

    if (args.channel is None) == (args.private is None):
        return fail("name a channel, or a private conversation with --private ACCOUNT ACCOUNT", 2)
    if args.channel is not None:
        if args.channel[:1] not in ("#", "&") or " " in args.channel:
            return fail(f"{args.channel!r} is not a channel name (export a conversation with --private)", 2)
        target, shown = casefold(args.channel), args.channel
    else:
        first, second = args.private
        if any(not name or any(c in name for c in " ,*?!@#&") for name in (first, second)):
            return fail(f"--private wants two account names, not {first!r} and {second!r}", 2)
        target, shown = conversation_key(first, second), f"the conversation of {first} and {second}"
    bounds: list[float | None] = []
    for flag, text in (("--since", args.since), ("--until", args.until)):
        try:
            bounds.append(None if text is None else parse_time(text))
        except ValueError:
            return fail(f"{flag} {text!r} is not an ISO-8601 time (2026-11-24, 2026-11-24T18:00, "
                        "2026-11-24T18:00:00+01:00; UTC without an offset)", 2)
    try:
        config = load_config(args.config, {} if args.data_dir is None else {"data_dir": args.data_dir})
        data_dir = Path(config.data_dir)
        waiting = journal_messages(data_dir) if data_dir.is_dir() else []  # before the database: see export
        storage = open_storage(config.storage_backend, storage_location(config), readonly=True)
    except ConfigError as exc:
        return fail(str(exc), 2)
    except BackupError as exc:
        return fail(str(exc))
    except StorageError as exc:
        where = data_dir if config.storage_backend == "sqlite" else describe_storage(config)
        return fail(f"cannot read the history in {where}: {exc}")
    out: Any = None
    try:
        out = sys.stdout.buffer if args.output is None else _open_private(args.output, force=args.force)
        count = export_history(storage, waiting, target, lambda line: out.write(line.encode() + b"\n"), *bounds)
        out.flush()
    except FileExistsError:
        return fail(f"{args.output} exists; use --force to overwrite it")
    except OSError as exc:
        return fail(f"cannot write {args.output or 'the output'}: {exc.strerror or exc}")
    finally:
        storage.close()
        if out is not None and args.output is not None:
            out.close()
    if args.output is not None:
        print(f"exported {_plural(count, 'message')} of {shown} to {args.output}", file=sys.stderr)
    return 0


def _open_private(path: str, *, force: bool) -> Any:
    """``path`` opened for writing, mode 0600 (history holds private messages); FileExistsError if it
    exists, unless ``force``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _mkpasswd(args: argparse.Namespace) -> int:
    from salotto.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("salotto: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("salotto: empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _gui(args: argparse.Namespace) -> int:
    try:
        from salotto.clients.tk.app import run as run_gui
    except ImportError as exc:
        print(f"salotto: the desktop client cannot start: {exc}", file=sys.stderr)
        return 1
    return run_gui(args)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand refuses what it does not know itself, with its own usage (``salotto serve [-h] ...``).

    argparse would hand the leftovers back to the top-level parser, whose usage tells nothing about the
    subcommand's options.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Where the data is, found as ``serve`` finds it."""
    parser.add_argument("--config", metavar="FILE", help="the server's config file (for its data_dir)")
    parser.add_argument("--data-dir", metavar="DIR", help="the server's data directory (overrides the config's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salotto", description="A self-hosted chat server that speaks IRC.")
    parser.add_argument("--version", action="version", version=f"salotto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)
    # Sixty settings make argparse's generated usage forty lines long: too long above a one-line error.
    serve = sub.add_parser(
        "serve", help="run the chat server", usage="%(prog)s [-h] [--config FILE] [--SETTING VALUE ...]",
        description="Run the chat server. Every setting below is also a key of the config file.",
    )
    _add_config_flags(serve)
    serve.set_defaults(func=_serve)
    init = sub.add_parser(
        "init", help="write a commented default config file (or, with --systemd, a systemd unit)",
        description="Write a commented default config file, or with --systemd a systemd unit that runs this "
        "salotto as a hardened service (see docs/operations.md).",
    )
    init.add_argument("path", nargs="?", help="the config file to write (default: salotto.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument("--systemd", action="store_true", help="print a systemd unit for salotto serve instead")
    init.add_argument("--output", metavar="FILE", help="with --systemd: write the unit to FILE")
    init.add_argument("--config", metavar="FILE",
                      help="with --systemd: the config file the service reads (default /etc/salotto/salotto.toml)")
    init.add_argument("--user", metavar="NAME",
                      help="with --systemd: run as this system user instead of a dynamic user of its own")
    init.set_defaults(func=_init)
    mkpasswd = sub.add_parser("mkpasswd", help="hash a password for [opers.NAME] password_hash or server_password_hash")
    mkpasswd.set_defaults(func=_mkpasswd)
    gui = sub.add_parser("gui", help="open the desktop client", description=gui_options.DESCRIPTION)
    gui_options.add_options(gui)  # its real flags: --help lists them, a wrong one gets gui's usage
    gui.set_defaults(func=_gui)

    backup = sub.add_parser(
        "backup", help="copy the database to a file, safely while the server runs",
        description="Copy the server's database, with the messages only its history journals hold yet, to "
        "FILE (mode 0600: it holds password hashes and private messages). Safe while the server runs.",
    )
    _add_data_flags(backup)
    backup.add_argument("file", metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    backup.set_defaults(func=_backup)
    restore = sub.add_parser(
        "restore", help="make a backup the data directory's database (server stopped)",
        description="Make the backup FILE the database of the data directory. The server must be stopped.",
    )
    _add_data_flags(restore)
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--force", action="store_true", help="replace the data directory's database")
    restore.set_defaults(func=_restore)
    export = sub.add_parser(
        "export", usage="%(prog)s [-h] [--config FILE] [--data-dir DIR] (CHANNEL | --private ACCOUNT ACCOUNT) "
        "[--since TIME] [--until TIME] [--output FILE] [--force]",
        help="write a channel's (or a conversation's) history as JSON lines",
        description="Write the history of a channel, or of the private conversation of two accounts, as "
        "JSON lines: msgid, time, sender, account, command, text, tags. Reads the data directory with your "
        "file access; no IRC permission is checked.",
    )
    _add_data_flags(export)
    export.add_argument("channel", metavar="CHANNEL", nargs="?", help="e.g. '#lobby' (quote it in a shell)")
    export.add_argument("--private", nargs=2, metavar="ACCOUNT", help="the conversation of two accounts instead")
    export.add_argument("--since", metavar="TIME", help="from this ISO-8601 time on (UTC without an offset)")
    export.add_argument("--until", metavar="TIME", help="before this ISO-8601 time")
    export.add_argument("--output", metavar="FILE", help="write to FILE (mode 0600) instead of stdout")
    export.add_argument("--force", action="store_true", help="overwrite --output FILE if it exists")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
