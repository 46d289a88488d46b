"""The ``salotto`` command: serve, init, mkpasswd, gui."""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from salotto import __version__
from salotto.clients.tk import options as gui_options
from salotto.config import KEYS, ConfigError, bad_value, default_template, load_config

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
    path = args.path
    if os.path.exists(path) and not args.force:
        print(f"salotto: {path} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(default_template())
    print(f"wrote {path}; start with: {salotto_command()} serve --config {shlex.quote(path)}")
    return 0


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
    init = sub.add_parser("init", help="write a commented default config file")
    init.add_argument("path", nargs="?", default="salotto.toml")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_init)
    mkpasswd = sub.add_parser("mkpasswd", help="hash a password for [opers.NAME] password_hash or server_password_hash")
    mkpasswd.set_defaults(func=_mkpasswd)
    gui = sub.add_parser("gui", help="open the desktop client", description=gui_options.DESCRIPTION)
    gui_options.add_options(gui)  # its real flags: --help lists them, a wrong one gets gui's usage
    gui.set_defaults(func=_gui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
