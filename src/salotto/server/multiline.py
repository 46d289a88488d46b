"""draft/multiline (https://ircv3.net/specs/extensions/multiline): one message of several lines.

A client with the capability sends ``BATCH +<ref> draft/multiline <target>``, then its lines as
``@batch=<ref> PRIVMSG <target> :<line>`` (``draft/multiline-concat`` on a line that continues the one
before it without a line break), then ``BATCH -<ref>``; the handler (salotto.server.handlers.multiline)
collects them in an :class:`OpenBatch` and sends the whole as one message. This module holds what the
message is made of: the open batch, how it is relayed (:class:`MultilineOutgoing`: one batch to those with
the capability, plain lines to the others) and how it is stored (one history message: the lines joined, the
places where a line continued the one before kept in a tag of their own).
"""

from __future__ import annotations

from collections.abc import Mapping

from salotto.proto.framing import encode_wire, valid_utf8
from salotto.proto.message import escape_tag_value, format_line
from salotto.server.client import TAG_ACCOUNT, TAG_MESSAGE_TAGS, TAG_MULTILINE, TAG_SERVER_TIME
from salotto.server.fanout import Outgoing, format_server_time

__all__ = [
    "BATCH_TYPE", "CAPABILITY", "CONCAT_TAG", "STORED_CONCAT", "Line", "MultilineOutgoing", "OpenBatch",
    "fit_lines", "stored_form", "stored_lines",
]

CAPABILITY = "draft/multiline"
BATCH_TYPE = "draft/multiline"
CONCAT_TAG = "draft/multiline-concat"
# The stored message's tag that says where a line continued the one before (character offsets into the
# stored text, comma-separated). Not a client tag: never relayed as a tag; what replays read to give the
# lines back as they were sent.
STORED_CONCAT = "salotto/multiline-concat"
# Less room than this per relayed line (a very long prefix under a small max_line_bytes) is taken as this
# much anyway, so that splitting a line always makes progress.
_MIN_ROOM = 32

# One line of a multiline message: its text, and whether it continues the line before (concat).
Line = tuple[str, bool]


class OpenBatch:
    """A multiline batch a client opened: what has come of it so far.

    ``dropped``: the batch was refused (a FAIL said why); the rest of its lines are ignored as they come,
    until its ``BATCH -`` or a line that is not part of it. Only the text is kept, at most
    ``multiline_max_bytes`` of it in ``multiline_max_lines`` lines: what one connection can make the server
    hold is bounded, however many connections do it.
    """

    __slots__ = ("command", "dropped", "label", "lines", "ref", "size", "tags", "target")

    def __init__(self, ref: str, target: str, tags: dict[str, str] | None, label: str | None) -> None:
        self.ref = ref
        self.target = target
        self.tags = tags  # the client-only tags of the BATCH + line: the message's own
        self.label = label  # labeled-response: the label of the BATCH + line, which the outcome answers
        self.command: str | None = None  # PRIVMSG or NOTICE, as the first line says
        self.lines: list[Line] = []
        self.size = 0  # bytes of text, with a line feed for each line that does not continue the one before
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        self.lines = []
        self.size = 0
        self.tags = None


def fit_lines(lines: list[Line], room: int) -> list[Line]:
    """``lines`` with every line longer than ``room`` bytes cut into pieces that fit, the pieces after the
    first continuing it (concat): a relayed line longer than the line limit would be dropped by clients.
    A cut falls after a space when there is one in the second half of the room, else between characters."""
    room = max(room, _MIN_ROOM)
    fitted: list[Line] = []
    for text, concat in lines:
        data = encode_wire(text)
        if len(data) <= room:
            fitted.append((text, concat))
            continue
        while len(data) > room:
            cut = data.rfind(b" ", room // 2, room) + 1 or room
            while cut > room - 3 and 0x80 <= data[cut] < 0xC0:  # not inside a UTF-8 sequence
                cut -= 1
            fitted.append((data[:cut].decode("utf-8", "surrogateescape"), concat))
            data = data[cut:]
            concat = True
        if data:
            fitted.append((data.decode("utf-8", "surrogateescape"), True))
    return fitted


def stored_form(lines: list[Line], client_tags: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """The text and tags a multiline message is stored with: its lines joined (a line feed before each line
    that does not continue the one before), the client tags, and :data:`STORED_CONCAT` when a line did.
    As text (the database takes UTF-8 only): what was not UTF-8 becomes U+FFFD, line by line, so that
    the offsets hold."""
    parts: list[str] = []
    cuts: list[str] = []
    position = 0
    for i, (text, concat) in enumerate(lines):
        text = valid_utf8(text)
        if i and not concat:
            parts.append("\n")
            position += 1
        elif i:
            cuts.append(str(position))
        parts.append(text)
        position += len(text)
    tags = {valid_utf8(k): valid_utf8(v) for k, v in client_tags.items()} if client_tags else {}
    if cuts:
        tags[STORED_CONCAT] = ",".join(cuts)
    return "".join(parts), tags


def stored_lines(text: str, tags: Mapping[str, str]) -> list[Line] | None:
    """The lines of a stored multiline message (see :func:`stored_form`), or None for a message of one line."""
    marks = tags.get(STORED_CONCAT) if tags else None
    if marks is None and "\n" not in text:
        return None
    cuts = sorted({int(mark) for mark in marks.split(",") if mark.isdigit()}) if marks else []
    lines: list[Line] = []
    start = 0
    for segment in text.split("\n"):
        end = start + len(segment)
        piece_start = start
        concat = False
        for cut in cuts:
            if piece_start < cut < end:
                lines.append((text[piece_start:cut], concat))
                piece_start = cut
                concat = True
        lines.append((text[piece_start:end], concat))
        start = end + 1
    return lines


class MultilineOutgoing(Outgoing):
    """A multiline message to deliver: to recipients with the capability (``TAG_MULTILINE``), one
    ``draft/multiline`` batch whose opening line carries the message's tags (client tags, msgid, time,
    account) and whose lines carry only the batch tag and ``draft/multiline-concat``; to the others, each
    line that is not blank as a message of its own (the msgid and client tags on the first, time and
    account on each), as the spec's fallback says. The same bytes for every recipient of a variant, as for
    any Outgoing."""

    __slots__ = ("_batch_tag", "_end", "_lines")

    def __init__(
        self,
        source: str,
        command: str,
        target: str,
        lines: list[Line],
        *,
        wall: float,
        batch_id: str,
        max_line_bytes: int,
        msgid: str | None = None,
        account: str | None = None,
        client_tags: Mapping[str, str] | None = None,
        bot: bool = False,
    ) -> None:
        super().__init__(source, "BATCH", ["+" + batch_id, BATCH_TYPE, target], wall=wall, msgid=msgid,
                         account=account, client_tags=client_tags, bot=bot)
        head = format_line(command, [target], source=source) + " :"
        room = max_line_bytes - len(encode_wire(head)) - 2
        self._lines = [(head + text + "\r\n", concat, not text) for text, concat in fit_lines(lines, room)]
        self._batch_tag = "@batch=" + batch_id
        self._end = f":{source} BATCH -{batch_id}\r\n"

    def _variant_built(self, flags: int) -> bytes:
        data = self._variants[flags] = self._build(flags)  # with TAG_MULTILINE or not: not the same bytes
        return data

    def _build(self, flags: int) -> bytes:
        if flags & TAG_MULTILINE:
            opener = super()._build(flags)
            plain = self._batch_tag + " "
            concat = self._batch_tag + ";" + CONCAT_TAG + " "
            body = "".join((concat if joined else plain) + line for line, joined, _ in self._lines)
            return opener + (body + self._end).encode("utf-8", "surrogateescape")
        client_tags: list[str] = []
        if flags & TAG_MESSAGE_TAGS and self._client_tags:
            client_tags = [f"{key}={escape_tag_value(value)}" if value else key
                           for key, value in self._client_tags.items()]
        later: list[str] = []
        if flags & TAG_MESSAGE_TAGS and self._bot:
            later.append("bot")
        if flags & TAG_SERVER_TIME:
            later.append("time=" + format_server_time(self._wall))
        if flags & TAG_ACCOUNT and self._account:
            later.append("account=" + self._account)
        msgid = ["msgid=" + self.msgid] if flags & TAG_MESSAGE_TAGS and self.msgid else []
        first_tags = client_tags + msgid + later
        # The client tags on the first line only (as the msgid): up to 4094 bytes of them on each of
        # max-lines lines would make one message a hundred times its size for every such recipient.
        other_tags = later
        out: list[str] = []
        for line, _, blank in self._lines:
            if blank:
                continue  # never a blank line to a client without the capability
            tags = other_tags if out else first_tags
            out.append("@" + ";".join(tags) + " " + line if tags else line)
        return "".join(out).encode("utf-8", "surrogateescape")
