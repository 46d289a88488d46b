"""Mode strings: turn ``+o-v alice bob`` into a list of changes (https://modern.ircdocs.horse/#mode-message)."""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "BOT_MODE",
    "CHANMODES_A",
    "CHANMODES_B",
    "CHANMODES_C",
    "CHANMODES_D",
    "CHANNEL_MODES",
    "CHANNEL_MODES_WITH_PARAM",
    "PREFIX_MODES",
    "PREFIX_SYMBOLS",
    "USER_MODES",
    "ModeChange",
    "parse_mode_string",
]

# ISUPPORT CHANMODES: A = lists, B = always a parameter, C = parameter when set, D = flags.
CHANMODES_A: Final = "beI"
CHANMODES_B: Final = "k"
CHANMODES_C: Final = "l"
CHANMODES_D: Final = "imnst"
# Membership prefixes, highest first: mode letter and the symbol shown in NAMES/WHO.
PREFIX_MODES: Final = "ov"
PREFIX_SYMBOLS: Final = "@+"
# B: a bot (https://ircv3.net/specs/extensions/bot-mode), i: invisible, o: operator, w: wallops.
USER_MODES: Final = "Biow"
BOT_MODE: Final = "B"
# RPL_MYINFO: every channel mode, and those that take a parameter.
CHANNEL_MODES: Final = "".join(sorted(CHANMODES_A + CHANMODES_B + CHANMODES_C + CHANMODES_D + PREFIX_MODES))
CHANNEL_MODES_WITH_PARAM: Final = "".join(sorted(CHANMODES_A + CHANMODES_B + CHANMODES_C + PREFIX_MODES))


class ModeChange(NamedTuple):
    adding: bool
    mode: str
    param: str | None


def parse_mode_string(modestring: str, args: list[str]) -> tuple[list[ModeChange], list[str]]:
    """Split a channel mode string and its arguments into changes.

    A list mode (``+b``) without an argument is a request to list it and comes back with
    ``param=None``. Returns the changes and the mode letters that are not known.
    """
    changes: list[ModeChange] = []
    unknown: list[str] = []
    adding = True
    arg_iter = iter(args)
    for ch in modestring:
        if ch == "+":
            adding = True
        elif ch == "-":
            adding = False
        elif ch in CHANMODES_A or ch in PREFIX_MODES or ch in CHANMODES_B:
            changes.append(ModeChange(adding, ch, next(arg_iter, None)))
        elif ch in CHANMODES_C:
            changes.append(ModeChange(adding, ch, next(arg_iter, None) if adding else None))
        elif ch in CHANMODES_D:
            changes.append(ModeChange(adding, ch, None))
        else:
            unknown.append(ch)
    return changes, unknown
