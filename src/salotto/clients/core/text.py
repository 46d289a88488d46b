"""Text helpers for clients: server-time, formatting codes, mentions, nick colours, casemapping."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

from salotto.proto import casefold as rfc1459_casefold

__all__ = [
    "NICK_COLOURS",
    "casefold_for",
    "mentions",
    "nick_colour_index",
    "parse_server_time",
    "source_nick",
    "split_keeping_spaces",
    "split_utf8",
    "strip_formatting",
]

# Number of distinct nick colours a GUI offers; HexChat uses a palette of about this size.
NICK_COLOURS = 12

# mIRC formatting: bold, colour (with up to two numbers), hex colour, reset, monospace, italics,
# strikethrough, underline, reverse (https://modern.ircdocs.horse/formatting.html).
_FORMATTING = re.compile(
    r"\x03(\d{1,2}(,\d{1,2})?)?|\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?|[\x02\x0f\x11\x1d\x1e\x1f\x16]"
)


def strip_formatting(text: str) -> str:
    """Drop mIRC colour and style codes; a GUI that does not render them should not show garbage."""
    return _FORMATTING.sub("", text)


def parse_server_time(value: str) -> datetime | None:
    """The IRCv3 ``time`` tag (``2024-05-01T12:00:00.000Z``) as an aware datetime, None if unreadable.

    https://ircv3.net/specs/extensions/server-time
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_server_time(moment: datetime) -> str:
    """An aware datetime in the ``time`` tag format (for CHATHISTORY references)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def nick_colour_index(nick: str) -> int:
    """A stable colour slot for a nick, the same in every run and on every machine."""
    return zlib.crc32(nick.lower().encode("utf-8")) % NICK_COLOURS


def mentions(text: str, nick: str) -> bool:
    """True when ``nick`` occurs in ``text`` as a word (``bob:``, ``@bob``, ``hi bob!``; not ``bobby``)."""
    if not nick:
        return False
    pattern = r"(?<![\w\[\]\\`^{|}-])" + re.escape(nick) + r"(?![\w\[\]\\`^{|}-])"
    return re.search(pattern, strip_formatting(text), re.IGNORECASE) is not None


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes, at spaces when possible."""
    pieces: list[str] = []
    while len(text.encode("utf-8")) > max_bytes:
        cut = len(text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    if text:
        pieces.append(text)
    return pieces


def split_keeping_spaces(text: str, max_bytes: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes that join back into ``text`` exactly.

    For draft/multiline-concat, where the receiver glues the pieces together: a cut after a space keeps
    the space at the end of the piece before. Always at least one piece (an empty line is one).
    """
    pieces: list[str] = []
    while len(text.encode("utf-8")) > max_bytes:
        cut = len(text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space + 1 > cut // 2 and space + 1 < cut:
            cut = space + 1
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


def source_nick(source: str | None) -> str:
    """The nick part of ``nick!user@host`` (a server name stays whole)."""
    if not source:
        return ""
    return source.split("!", 1)[0] if "!" in source else source


def _ascii_casefold(name: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in name)


def casefold_for(casemapping: str) -> Callable[[str], str]:
    """The comparison function for an ISUPPORT CASEMAPPING value (rfc1459 when unknown)."""
    if casemapping == "ascii":
        return _ascii_casefold
    return rfc1459_casefold
