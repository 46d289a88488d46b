"""The desktop client's command-line options, kept free of Tk.

``salotto gui`` gets its flags from here, so ``salotto gui --help`` lists them and a bad flag is refused
with the gui's own usage, even on a Python built without tkinter.
"""

from __future__ import annotations

import argparse

from salotto.clients.tk.settings import MAX_FONT_SIZE, MIN_FONT_SIZE, THEMES

__all__ = ["DESCRIPTION", "add_options", "build_parser"]

DESCRIPTION = "The salotto desktop chat client: a connect dialog, or straight in with --server."


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST:PORT[,HOST:PORT...]",
                        help="connect straight away, skipping the dialog (port defaults to 6667, 6697 with --tls); "
                        "several servers of one network (a cluster's nodes), comma-separated: when the "
                        "connection goes, the client moves to the next")
    parser.add_argument("--nick", help="nickname (default: the last one used, or your login name)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-insecure", action="store_true",
                        help="with --tls: accept a certificate that cannot be verified (self-signed)")
    parser.add_argument("--font-size", type=int, metavar="POINTS",
                        help=f"text size in points ({MIN_FONT_SIZE}-{MAX_FONT_SIZE}; saved for next time)")
    parser.add_argument("--theme", choices=THEMES, help="colour theme (saved for next time)")
    parser.add_argument("--join", action="append", default=[], metavar="CHANNEL",
                        help="channel to join besides #lobby (repeatable)")


def build_parser(prog: str = "salotto gui") -> argparse.ArgumentParser:
    """The parser ``python -m salotto.clients.tk`` uses; ``salotto gui`` adds the same options to its own."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_options(parser)
    return parser
