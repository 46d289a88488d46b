"""IRC messages: parse one line into a :class:`Message`, serialize one back.

Implements the message format of the Modern IRC client protocol
(https://modern.ircdocs.horse/#messages) with IRCv3 message tags
(https://ircv3.net/specs/extensions/message-tags). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from salotto.proto.errors import LocalProtocolError, MalformedMessage

__all__ = [
    "Message",
    "escape_tag_value",
    "format_line",
    "format_tags",
    "is_valid_tag_key",
    "parse",
    "parse_tags",
    "unescape_tag_value",
]

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE_TABLE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})
# Message-tags key: optional client prefix '+', optional vendor (a host name) and '/', then letters,
# digits and '-'. Like ergo we accept '-', '.' and '/' anywhere rather than check the vendor part.
_TAG_KEY: Final = re.compile(r"\+?[A-Za-z0-9./-]+")
# A command is a word of letters or a three-digit numeric (https://modern.ircdocs.horse/#command).
_COMMAND: Final = re.compile(r"[A-Za-z]+|[0-9]{3}")


class Message:
    """One parsed IRC message.

    ``command`` is upper-cased; ``params`` holds every parameter, the trailing one included,
    without its leading colon. ``tags`` maps tag keys (with any ``+`` client prefix) to their
    unescaped values; a tag without a value maps to ``""``.
    """

    __slots__ = ("command", "params", "source", "tags")

    def __init__(
        self,
        command: str,
        params: list[str] | None = None,
        source: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.params = params if params is not None else []
        self.source = source
        self.tags = tags if tags is not None else {}

    def __repr__(self) -> str:
        return (
            f"Message(command={self.command!r}, params={self.params!r}, "
            f"source={self.source!r}, tags={self.tags!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.command, self.params, self.source, self.tags) == (
            other.command,
            other.params,
            other.source,
            other.tags,
        )

    def to_line(self) -> str:
        """Serialize without the trailing CRLF."""
        return format_line(self.command, self.params, source=self.source, tags=self.tags)


def unescape_tag_value(value: str) -> str:
    """Undo IRCv3 tag value escaping, character by character (an unknown escape drops the slash)."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < n:
                nxt = value[i]
                out.append(_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def escape_tag_value(value: str) -> str:
    """Escape a tag value for the wire."""
    return value.translate(_ESCAPE_TABLE)


def is_valid_tag_key(key: str) -> bool:
    """Whether ``key`` may name a message tag (``+`` client prefix and ``vendor/`` included)."""
    return _TAG_KEY.fullmatch(key) is not None


def _has_line_breaker(text: str) -> bool:
    # CR, LF and NUL are never allowed inside a line (https://modern.ircdocs.horse/#messages); a CR
    # would let a peer smuggle a second line to clients that split on CR alone.
    return "\r" in text or "\n" in text or "\x00" in text


def parse_tags(raw: str) -> dict[str, str]:
    """``a=1;b=x\\sy`` -> {"a": "1", "b": "x y"}: message tags as a line carries them (without the ``@``),
    also how SEARCH's attributes and WEBPUSH's keys are written."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        key, sep, value = item.partition("=")
        # message-tags: an invalid key MUST NOT make us reject the message; we drop that tag only.
        if not is_valid_tag_key(key):
            continue
        # A repeated key: the last one wins, as the spec says.
        tags[key] = unescape_tag_value(value) if sep else ""
    return tags


def parse(line: str) -> Message:
    """Parse one line (without CRLF) into a :class:`Message`.

    Runs of spaces between parameters count as one separator, as in RFC 1459; only the space
    (0x20) separates, so tabs and IRC formatting codes stay inside their parameter.

    Raises:
        MalformedMessage: the line holds no command, or a CR, LF or NUL.
    """
    # Every line a client sends comes through here: the common one (no tags, no source, no runs of spaces)
    # takes a partition and a split, and no other copy of the line.
    if "\r" in line or "\n" in line or "\x00" in line:  # _has_line_breaker, inlined
        raise MalformedMessage("CR, LF or NUL inside a line")
    tags: dict[str, str] | None = None
    source: str | None = None
    rest = line
    first = line[:1]
    if first == "@":
        end = line.find(" ")
        if end < 0:
            raise MalformedMessage("tags without a command")
        tags = parse_tags(line[1:end])
        rest = line[end:].lstrip(" ")
        first = rest[:1]
    elif first == " ":
        rest = line.lstrip(" ")
        first = rest[:1]
    if first == ":":
        end = rest.find(" ")
        if end < 0:
            raise MalformedMessage("source without a command")
        source = rest[1:end]
        rest = rest[end:].lstrip(" ")
        if rest[:1] == ":":
            raise MalformedMessage("trailing parameter without a command")
    middle, colon, trailing = rest.partition(" :")
    params = middle.split(" ")
    if "" in params:
        params = [word for word in params if word]
        if not params:
            raise MalformedMessage("no command")
    command = params[0].upper()
    del params[0]
    if colon:
        params.append(trailing)
    message = _new_message(Message)  # Message(...) without its defaults: the parts are all here
    message.command = command
    message.params = params
    message.source = source
    message.tags = tags if tags is not None else {}
    return message


_new_message = object.__new__


def format_tags(tags: Mapping[str, str]) -> str:
    """The ``@k=v;k2`` tag section, without the trailing space; empty when there are no tags.

    Raises:
        LocalProtocolError: a key is not a valid tag key, or a value holds a NUL (it has no escape).
    """
    if not tags:
        return ""
    parts: list[str] = []
    for key, value in tags.items():
        if not is_valid_tag_key(key):
            raise LocalProtocolError(f"invalid tag key {key!r}")
        if "\x00" in value:
            raise LocalProtocolError(f"NUL in the value of tag {key!r}")
        parts.append(key if value == "" else f"{key}={escape_tag_value(value)}")
    return "@" + ";".join(parts)


def _check_middle(param: str) -> None:
    """A middle parameter: one non-empty word that cannot pass for the trailing one."""
    if not param or " " in param or param[0] == ":" or _has_line_breaker(param):
        raise LocalProtocolError(f"invalid middle parameter: {param!r}")


def format_line(
    command: str,
    params: Sequence[str] = (),
    *,
    source: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Serialize a message (without CRLF). The last parameter gets a colon when it needs one.

    Raises:
        LocalProtocolError: the message cannot be written as one IRC line: a command that is not
            letters or three digits, a space in the source, an empty, spaced or colon-led middle
            parameter, a CR, LF or NUL anywhere, an invalid tag.
    """
    parts: list[str] = []
    if tags:
        parts.append(format_tags(tags))
    if source:
        if " " in source or _has_line_breaker(source):
            raise LocalProtocolError(f"invalid source: {source!r}")
        parts.append(":" + source)
    if _COMMAND.fullmatch(command) is None:
        raise LocalProtocolError(f"invalid command: {command!r}")
    parts.append(command)
    if params:
        for param in params[:-1]:
            _check_middle(param)
        parts.extend(params[:-1])
        last = params[-1]
        if _has_line_breaker(last):
            raise LocalProtocolError(f"CR, LF or NUL in the last parameter: {last!r}")
        if not last or " " in last or last[0] == ":":
            parts.append(":" + last)
        else:
            parts.append(last)
    return " ".join(parts)
