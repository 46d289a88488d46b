"""The reply buffer a handler writes into, and how it reaches the client.

Everything a command sends back to its own sender goes through :class:`Context`; when the
sender used a ``label`` tag, :meth:`Context.flush` wraps it as IRCv3 labeled-response requires
(https://ircv3.net/specs/extensions/labeled-response): an ACK, one labelled line, or a batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salotto.proto.errors import LocalProtocolError
from salotto.proto.message import Message, escape_tag_value, format_line

if TYPE_CHECKING:
    from salotto.server.client import Client
    from salotto.server.state import Server

__all__ = ["WORDS_BUDGET", "Context", "add_tag", "chunk_words"]

# Bytes of space-separated words (names, channels) per reply line, leaving room for the prefix,
# the numeric and the other parameters within 512.
WORDS_BUDGET = 400


def chunk_words(words: list[str], budget: int) -> list[str]:
    """Join ``words`` with spaces into lines of at most ``budget`` characters (a longer word: alone)."""
    lines: list[str] = []
    current: list[str] = []
    size = 0
    for word in words:
        if current and size + len(word) + 1 > budget:
            lines.append(" ".join(current))
            current = []
            size = 0
        current.append(word)
        size += len(word) + 1
    if current:
        lines.append(" ".join(current))
    return lines


class Context:
    """One command being handled: who sent what, and the lines going back to them."""

    __slots__ = ("client", "deferred", "flushed", "label", "msg", "out", "server")

    def __init__(self, server: Server, client: Client, msg: Message) -> None:
        self.server = server
        self.client = client
        self.msg = msg
        self.out: list[bytes] = []
        # Set by a handler whose answer comes later (a storage read): it labels its own reply.
        self.deferred = False
        # Answered: a deferred reply that came back at once (tests run hashing inline) was
        # flushed by its callback, and the dispatcher's flush must not send it again.
        self.flushed = False
        label = msg.tags.get("label") if msg.tags else None
        # Only with batch too (as InspIRCd does): a reply of several lines is a batch, and a client
        # without the cap must get none.
        caps = client.caps
        self.label = label if label and "labeled-response" in caps and "batch" in caps else None

    def reply(self, numeric: str, *params: str) -> None:
        """A numeric from the server, addressed to the sender."""
        self.from_server(numeric, self.client.nick, *params)

    def notice(self, text: str) -> None:
        self.from_server("NOTICE", self.client.nick, text)

    def from_server(self, command: str, *params: str) -> None:
        """A line with the server as its source (numerics, PONG, CAP, NOTICE...)."""
        try:
            line = format_line(command, params, source=self.server.name)
        except LocalProtocolError:
            # A reply that echoes what the client sent ("hello world" as a nick) must still be
            # one valid line: such a parameter is made into one word.
            line = format_line(command, _one_word_params(params), source=self.server.name)
        self.out.append((line + "\r\n").encode())

    def fail(self, command: str, code: str, *context: str, description: str) -> None:
        """An IRCv3 standard reply (https://ircv3.net/specs/extensions/standard-replies)."""
        self.from_server("FAIL", command, code, *context, description)

    def label_tag(self) -> str | None:
        """``label=<escaped>`` for a reply built outside :meth:`flush` (a deferred one), or None."""
        return "label=" + escape_tag_value(self.label) if self.label is not None else None

    def resume(self) -> None:
        """A deferred handler's callback starts answering; its flush sends what collects from now
        (labelled, if the command was), after anything the handler had not flushed yet."""
        if self.flushed:
            self.out = []
        self.flushed = False
        self.deferred = False

    def send(self, data: bytes) -> None:
        """Bytes already serialized, CRLF included."""
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        label = self.label
        if self.flushed or (self.deferred and not out):
            return
        self.flushed = True
        if label is None:
            if out:
                self.client.conn.write(out[0] if len(out) == 1 else b"".join(out))
            return
        tag = "label=" + escape_tag_value(label)
        if not out:
            data = (f"@{tag} :{self.server.name} ACK\r\n").encode()
        elif len(out) == 1:
            data = add_tag(out[0], tag)
        else:
            ref = self.server.new_batch_id()
            start = f"@{tag} :{self.server.name} BATCH +{ref} labeled-response\r\n".encode()
            inner = b"".join(add_tag(line, "batch=" + ref) for line in out)
            data = start + inner + f":{self.server.name} BATCH -{ref}\r\n".encode()
        self.client.conn.write(data)


def _one_word_params(params: tuple[str, ...]) -> list[str]:
    fixed = [p.replace("\r", " ").replace("\n", " ").replace("\x00", "") for p in params]
    for i in range(len(fixed) - 1):
        fixed[i] = fixed[i].replace(" ", "_").lstrip(":") or "*"
    return fixed


def add_tag(line: bytes, tag: str) -> bytes:
    """Add one tag (``key=escaped-value``) to a serialized line."""
    if line[:1] == b"@":
        return b"@" + tag.encode() + b";" + line[1:]
    return b"@" + tag.encode() + b" " + line
