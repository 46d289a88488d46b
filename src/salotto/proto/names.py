"""Validation of nicknames, channel names and host names; hostmasks and their matching."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

from salotto.proto.casemap import casefold

__all__ = [
    "CHANTYPES",
    "Userhost",
    "is_valid_channel",
    "is_valid_hostname",
    "is_valid_nick",
    "mask_match",
    "normalize_mask",
    "split_userhost",
]

CHANTYPES: Final = "#"

_NICK_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz[]\\`_^{|}")
_NICK_REST: Final = _NICK_FIRST | frozenset("0123456789-")
# Space, comma and BELL end a channel name on the wire (RFC 2812 2.3.1); ':' would confuse parsers.
_CHANNEL_FORBIDDEN: Final = frozenset(" ,\x07:\r\n\x00")
_HOST_LABEL: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")


def is_valid_nick(nick: str, max_len: int) -> bool:
    """Modern IRC nick rules: a letter or special first, then letters, digits, specials or '-'."""
    if not nick or len(nick) > max_len:
        return False
    if nick[0] not in _NICK_FIRST:
        return False
    return all(ch in _NICK_REST for ch in nick)


def is_valid_channel(name: str, max_len: int) -> bool:
    """A channel name: a CHANTYPES character, then at least one character none of which ends a name."""
    if len(name) < 2 or len(name) > max_len or name[0] not in CHANTYPES:
        return False
    return not any(ch in _CHANNEL_FORBIDDEN for ch in name)


def is_valid_hostname(host: str) -> bool:
    """A dotted DNS name of at least two labels (what a server name or client host may be)."""
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    if len(labels) < 2:
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


class Userhost(NamedTuple):
    nick: str
    user: str
    host: str


def split_userhost(source: str) -> Userhost:
    """Split ``nick!user@host``; missing parts are empty strings."""
    nick, _, rest = source.partition("!")
    if "@" in nick and not rest:
        nick, _, host = nick.partition("@")
        return Userhost(nick, "", host)
    user, _, host = rest.partition("@")
    return Userhost(nick, user, host)


def normalize_mask(mask: str) -> str:
    """Complete a ban-style mask to ``nick!user@host`` form (``bob`` -> ``bob!*@*``)."""
    if "!" not in mask and "@" not in mask:
        if "." in mask or ":" in mask:
            return f"*!*@{mask}"
        return f"{mask}!*@*"
    if "!" not in mask:
        return f"*!{mask}"
    if "@" not in mask:
        return f"{mask}@*"
    return mask


@lru_cache(maxsize=4096)
def _compile_mask(folded_mask: str) -> re.Pattern[str]:
    pattern = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in folded_mask
    )
    return re.compile(pattern, re.DOTALL)


def mask_match(mask: str, subject: str) -> bool:
    """Glob match (``*`` any run, ``?`` one character), case-insensitive under the casemapping."""
    return _compile_mask(casefold(mask)).fullmatch(casefold(subject)) is not None
