"""The reply buffer a handler writes into, and how it reaches the client.

Everything a command sends back to its own sender goes through :class:`Context`; when the
sender used a ``label`` tag, :meth:`Context.flush` wraps it as IRCv3 labeled-response requires
(https://ircv3.net/specs/extensions/labeled-response): an ACK, one labelled line, or a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from salotto.proto.errors import LocalProtocolError
from salotto.proto.framing import encode_wire
from salotto.proto.message import Message, escape_tag_value, format_line

if TYPE_CHECKING:
    from salotto.server.client import Client
    from salotto.server.state import Server

__all__ = ["WORDS_BUDGET", "Context", "add_tag", "chunk_words", "in_outer_batch"]

T = TypeVar("T")

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
    """One command being handled: who sent what, and the lines going back to them.

    A handler whose answer needs work off the loop (a password hash, a storage read) does not
    answer at once: it hands ``ctx.wait(callback)`` to that work as its callback. Until every such
    callback has run, the connection's later lines wait (see :meth:`Server.handle_line`), so a
    client's commands are answered in the order it sent them; other connections go on meanwhile.
    The answer (labelled as one response, when the command had a label) leaves when the last
    callback has run.
    """

    __slots__ = ("client", "flushed", "label", "msg", "out", "parent", "server", "waits")

    def __init__(self, server: Server, client: Client, msg: Message) -> None:
        self.server = server
        self.client = client
        self.msg = msg
        self.out: list[bytes] = []
        # Callbacks from wait() that have not run yet; while any has not, the client's input is held.
        self.waits = 0
        # The answer left (flush): what collects later goes on its own, unlabelled.
        self.flushed = False
        # Set for a follow-up (see followup()): the context whose answer this one's lines come after.
        self.parent: Context | None = None
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
        self.out.append((line + "\r\n").encode("utf-8", "surrogateescape"))  # encode_wire, inlined: hot

    def fail(self, command: str, code: str, *context: str, description: str) -> None:
        """An IRCv3 standard reply (https://ircv3.net/specs/extensions/standard-replies)."""
        self.from_server("FAIL", command, code, *context, description)

    def send(self, data: bytes) -> None:
        """Bytes already serialized, CRLF included."""
        self.out.append(data)

    def label_tag(self) -> str | None:
        """``label=<escaped>`` for this command's answer, or None when it has no label."""
        return "label=" + escape_tag_value(self.label) if self.label is not None else None

    def disconnect_after(self, reason: str, *, error: str | None = None) -> None:
        """Send what the answer holds now, unlabelled, then disconnect the client (``reason`` for others
        and the log, ``error`` in its ERROR line): nothing is answered after the ERROR."""
        if self.out:
            self.client.conn.write(b"".join(self.out))
            self.out.clear()
        self.label = None
        self.server.disconnect(self.client, reason, error=error)

    def followup(self) -> Context:
        """A context for what comes after this command's answer rather than in it (the replay of a channel's
        history on JOIN): its lines go out after this answer, or join it if it has not gone yet; while it
        waits it holds the connection's next lines, but not this answer."""
        later = Context(self.server, self.client, self.msg)
        later.label = None
        later.parent = self
        return later

    def wait(self, callback: Callable[[T], None]) -> Callable[[T], None]:
        """The answer comes later: returns the callback to hand to the work off the loop.

        From now until it has run (on the loop thread), this connection's later lines wait. It runs
        ``callback`` (not if the client left meanwhile), which writes into this context and may wait
        again; once nothing more is waited for, the answer is flushed and the client's input goes on.
        An exception in ``callback`` is our bug: logged, answered with 400, and the input goes on.
        """
        if self.waits == 0:
            self.server.hold_input(self.client)
        self.waits += 1

        def resumed(value: T) -> None:
            try:
                if not self.client.quitting:
                    callback(value)
            except Exception:
                self.server.internal_error(self, "callback")
            finally:
                self.done_waiting()

        return resumed

    def call(self, operation: Callable[[Callable[[T], None]], None], callback: Callable[[T], None]) -> None:
        """Run ``operation(done)``, a registry call whose answer may come at once or later, and
        ``callback`` with that answer: at once (after ``operation`` returned) when the answer already
        came, as the local registries give it; otherwise as :meth:`wait` does, holding the connection's
        later lines until it comes."""
        came: list[T] = []
        resumed: Callable[[T], None] | None = None

        def done(value: T) -> None:
            if resumed is not None:
                resumed(value)
            elif not came:
                came.append(value)

        operation(done)
        if came:
            callback(came[0])
        else:
            resumed = self.wait(callback)

    def done_waiting(self) -> None:
        """One callback of :meth:`wait` has run: the last one sends the answer and releases the input."""
        if self.waits <= 0:
            return
        self.waits -= 1
        if self.waits:
            return
        self.flush()
        self.server.release_input(self.client)

    def abandon(self) -> None:
        """The handler raised after it started waiting: answer now and release the input (a callback
        that still comes runs, and what it writes is not sent: the answer has gone)."""
        if self.waits > 0:
            self.waits = 1
            self.done_waiting()

    def flush(self) -> None:
        """Send the answer (a labelled one as one response); later calls send what collected since."""
        if self.waits:
            return  # the answer is not complete yet: done_waiting() sends it
        out = self.out
        parent = self.parent
        if parent is not None and not parent.flushed:
            parent.out.extend(out)  # after what the parent has so far, sent with it
            out.clear()
            return
        label = self.label
        if self.flushed:
            label = None
            if not out:
                return
        self.flushed = True
        if label is None:
            if out:
                self.client.conn.write(out[0] if len(out) == 1 else b"".join(out))
                out.clear()
            return
        tag = "label=" + escape_tag_value(label)
        if not out:
            data = encode_wire(f"@{tag} :{self.server.name} ACK\r\n")
        elif len(out) == 1:
            data = add_tag(out[0], tag)
        else:
            ref = self.server.new_batch_id()
            start = encode_wire(f"@{tag} :{self.server.name} BATCH +{ref} labeled-response\r\n")
            inner = b"".join(in_outer_batch(out, "batch=" + ref))
            data = start + inner + f":{self.server.name} BATCH -{ref}\r\n".encode()
        out.clear()
        self.client.conn.write(data)


def _one_word_params(params: tuple[str, ...]) -> list[str]:
    fixed = [p.replace("\r", " ").replace("\n", " ").replace("\x00", "") for p in params]
    for i in range(len(fixed) - 1):
        fixed[i] = fixed[i].replace(" ", "_").lstrip(":") or "*"
    return fixed


def in_outer_batch(out: list[bytes], tag: str) -> list[bytes]:
    """The lines of ``out`` (an entry may hold several, a whole batch) tagged with ``tag``, the outer batch's,
    except those inside a batch of their own: a nested batch's start and end lines carry the outer tag, its
    lines only their own (IRCv3 batch)."""
    return [line if _has_batch_tag(line) else add_tag(line, tag)
            for entry in out for line in entry.splitlines(keepends=True)]


def _has_batch_tag(line: bytes) -> bool:
    if line[:1] != b"@":
        return False
    tags = line[1:line.find(b" ")]
    return tags.startswith(b"batch=") or b";batch=" in tags


def add_tag(line: bytes, tag: str) -> bytes:
    """Add one tag (``key=escaped-value``) to a serialized line."""
    if line[:1] == b"@":
        return b"@" + encode_wire(tag) + b";" + line[1:]
    return b"@" + encode_wire(tag) + b" " + line
