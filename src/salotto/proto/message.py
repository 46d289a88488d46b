"""IRC messages: parse one line into a :class:`Message`, serialize one back.

Implements the message format of the Modern IRC client protocol
(https://modern.ircdocs.horse/#messages) with IRCv3 message tags
(https://ircv3.net/specs/extensions/message-tags). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from salotto.proto.errors import MalformedMessage

__all__ = [
    "Message",
    "escape_tag_value",
    "format_line",
    "format_tags",
    "parse",
    "unescape_tag_value",
]

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE_TABLE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class Message:
    """One parsed IRC message.

    ``command`` is upper-cased; ``params`` holds every parameter, the trailing one included,
    without its leading colon. ``tags`` maps tag keys (with any ``+`` client prefix) to their
    unescaped values; a tag without a value maps to ``""``.
    """

    __slots__ = ("tags", "source", "command", "params")

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


def _parse_tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not key:
            continue
        tags[key] = unescape_tag_value(value) if sep else ""
    return tags


def parse(line: str) -> Message:
    """Parse one line (without CRLF) into a :class:`Message`.

    Runs of spaces between parameters count as one separator, as in RFC 1459.

    Raises:
        MalformedMessage: the line holds no command.
    """
    tags: dict[str, str] = {}
    source: str | None = None
    pos = 0
    n = len(line)
    if line.startswith("@"):
        end = line.find(" ")
        if end < 0:
            raise MalformedMessage("tags without a command")
        tags = _parse_tags(line[1:end])
        pos = end
    while pos < n and line[pos] == " ":
        pos += 1
    if pos < n and line[pos] == ":":
        end = line.find(" ", pos)
        if end < 0:
            raise MalformedMessage("source without a command")
        source = line[pos + 1 : end]
        pos = end
        while pos < n and line[pos] == " ":
            pos += 1
    trailing: str | None = None
    colon = line.find(" :", pos)
    if colon >= 0:
        trailing = line[colon + 2 :]
        middle = line[pos:colon]
    else:
        middle = line[pos:]
    words = middle.split()
    if not words:
        raise MalformedMessage("no command")
    command = words[0].upper()
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Message(command, params, source, tags)


def format_tags(tags: Mapping[str, str]) -> str:
    """The ``@k=v;k2`` tag section, without the trailing space; empty when there are no tags."""
    if not tags:
        return ""
    parts = [key if value == "" else f"{key}={escape_tag_value(value)}" for key, value in tags.items()]
    return "@" + ";".join(parts)


def format_line(
    command: str,
    params: Sequence[str] = (),
    *,
    source: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Serialize a message (without CRLF). The last parameter gets a colon when it needs one."""
    parts: list[str] = []
    if tags:
        parts.append(format_tags(tags))
    if source:
        parts.append(":" + source)
    parts.append(command)
    if params:
        parts.extend(params[:-1])
        last = params[-1]
        if not last or " " in last or last[0] == ":":
            parts.append(":" + last)
        else:
            parts.append(last)
    return " ".join(parts)
