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
# RFC 1123 label: letters, digits, inner hyphens; at most 63 octets (RFC 1035 2.3.4).
_HOST_LABEL: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# RFC 1035 2.3.4: 255 octets on the wire, 253 characters in dotted text form.
_MAX_HOSTNAME_LEN: Final = 253


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
    if not name.isascii() and any("\udc80" <= ch <= "\udcff" for ch in name):
        return False  # bytes that were not UTF-8 (salotto.proto.framing.decode_wire): a name is text
    return not any(ch in _CHANNEL_FORBIDDEN for ch in name)


def is_valid_hostname(host: str) -> bool:
    """A dotted DNS name of at least two labels (what a server name or client host may be)."""
    if not host or len(host) > _MAX_HOSTNAME_LEN:
        return False
    labels = host.split(".")
    if len(labels) < 2:
        return False
    # fullmatch: re.match with '$' would accept a trailing newline.
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


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
    """Complete a ban-style mask to ``nick!user@host`` form.

    ``bob`` -> ``bob!*@*``, ``example.com`` -> ``*!*@example.com`` (a dot or colon means a host),
    ``user@host`` -> ``*!user@host``, ``bob!u`` -> ``bob!u@*``. An empty part becomes ``*``, so
    ``bob!`` or ``@host`` still match someone.
    """
    if "!" in mask:
        nick, _, rest = mask.partition("!")
        user, _, host = rest.partition("@")
    elif "@" in mask:
        nick = ""
        user, _, host = mask.partition("@")
    elif "." in mask or ":" in mask:
        nick, user, host = "", "", mask
    else:
        nick, user, host = mask, "", ""
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"


class _Segment(NamedTuple):
    pattern: re.Pattern[str]
    length: int  # characters the pattern matches: every segment is fixed-length


@lru_cache(maxsize=4096)
def _compile_mask(folded_mask: str) -> tuple[_Segment, ...]:
    """One fixed-length pattern per run between ``*``s (``?`` is any one character).

    Matching segment by segment costs at most len(mask) * len(subject); one regex with ``.*`` for
    every ``*`` backtracks exponentially on masks like ``*a*a*a*a*b``, and ban masks come from users.
    """
    return tuple(
        _Segment(
            re.compile("".join("." if ch == "?" else re.escape(ch) for ch in segment), re.DOTALL),
            len(segment),
        )
        for segment in folded_mask.split("*")
    )


def mask_match(mask: str, subject: str) -> bool:
    """Glob match (``*`` any run, ``?`` one character), case-insensitive under the casemapping."""
    segments = _compile_mask(casefold(mask))
    text = casefold(subject)
    if len(segments) == 1:
        return segments[0].pattern.fullmatch(text) is not None
    head, tail = segments[0], segments[-1]
    start, end = head.length, len(text) - tail.length
    if start > end:
        return False
    if head.pattern.fullmatch(text, 0, start) is None or tail.pattern.fullmatch(text, end) is None:
        return False
    # Between two stars, the leftmost place a fixed-length segment fits is always a best choice.
    for segment in segments[1:-1]:
        found = segment.pattern.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True
