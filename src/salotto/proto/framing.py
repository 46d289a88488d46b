"""Bytes to lines: split a byte stream on LF (CR optional), enforcing the line length limit.

Sans-I/O: :meth:`LineReader.feed` takes what the socket gave and returns complete lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_TAGS_BYTES",
    "LINE_TOO_LONG",
    "LineReader",
    "LineSplitter",
    "LineTooLong",
    "decode_line",
    "decode_wire",
    "encode_wire",
    "valid_utf8",
]

# RFC 1459/2812: 512 bytes including CRLF for the message proper; every server uses it.
DEFAULT_MAX_LINE_BYTES: Final = 512
# IRCv3 message-tags: a client's tag section is at most 4096 bytes, '@' and the space included (4094
# bytes of tag data, client-only tags or not); longer is answered 417, never truncated.
DEFAULT_MAX_TAGS_BYTES: Final = 4096


class LineTooLong:
    """Stands in :meth:`LineReader.feed`'s result for a line that exceeded the limit and was dropped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG: Final = LineTooLong()


class LineSplitter:
    """What :class:`LineReader` does, for a class that holds the state itself (``_buffer``, ``_discarding``,
    ``max_line_bytes``, ``max_tags_bytes`` as its own slots): the plain-TCP connection is its own line
    reader, one object per connection less (salotto.transport.reactor)."""

    if not TYPE_CHECKING:  # the state is the subclass's slots, which mypy cannot see from here
        __slots__ = ()
    _buffer: bytes
    _discarding: bool
    max_line_bytes: int
    max_tags_bytes: int

    @property
    def buffered_bytes(self) -> int:
        """Bytes held back waiting for a line ending; never more than the two limits together."""
        return len(self._buffer)

    def _too_long(self, line: bytes) -> bool:
        # The limit counts the CRLF, as RFC 1459 does.
        if len(line) + 2 <= self.max_line_bytes:
            return False
        if line[:1] == b"@":
            space = line.find(b" ")
            tags_len = space + 1 if space >= 0 else len(line)
            if tags_len > self.max_tags_bytes:
                return True
            return len(line) - tags_len + 2 > self.max_line_bytes
        return True

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """Add received bytes; return the complete lines they finish."""
        buf = self._buffer + data if self._buffer else data
        out: list[bytes | LineTooLong] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                continue
            if self._too_long(line):
                out.append(LINE_TOO_LONG)
            else:
                out.append(line)
        rest = buf[start:]
        if len(rest) > self.max_line_bytes + self.max_tags_bytes:
            # No line ending in sight: drop what we hold and skip to the next LF.
            if not self._discarding:
                out.append(LINE_TOO_LONG)
            self._discarding = True
            rest = b""
        self._buffer = rest
        return out


class LineReader(LineSplitter):
    """Accumulates bytes and yields lines without their line ending.

    A line longer than ``max_line_bytes`` (plus ``max_tags_bytes`` when it starts with tags) is
    dropped and reported once as :data:`LINE_TOO_LONG`; the stream goes on at the next line, so a
    client that sends one long line is answered, not disconnected. Empty lines are skipped.
    """

    __slots__ = ("_buffer", "_discarding", "max_line_bytes", "max_tags_bytes")

    def __init__(
        self,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_tags_bytes: int = DEFAULT_MAX_TAGS_BYTES,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_tags_bytes = max_tags_bytes
        self._buffer = b""
        self._discarding = False


def decode_line(line: bytes) -> str:
    """UTF-8 when it is valid, Latin-1 otherwise: every byte string decodes into something to show (the
    clients' choice; the server keeps the bytes instead, see :func:`decode_wire`)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def decode_wire(line: bytes) -> str:
    """A line as the server handles it: UTF-8, with the bytes that are not UTF-8 kept as lone surrogates
    (``surrogateescape``), so that :func:`encode_wire` gives them back as they came. IRC relays bytes: a
    client in another encoding reaches its peers unchanged, and only what must be text (a text WebSocket
    frame, the history database) replaces them (:func:`valid_utf8`)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("utf-8", "surrogateescape")


def encode_wire(text: str) -> bytes:
    """A line (or part of one) for the socket: UTF-8, and any byte :func:`decode_wire` kept, as it was."""
    return text.encode("utf-8", "surrogateescape")


def valid_utf8(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 on the wire as U+FFFD: for what must be valid text."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text
