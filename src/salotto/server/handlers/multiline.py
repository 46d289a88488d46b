"""BATCH from clients: draft/multiline (https://ircv3.net/specs/extensions/multiline) on client-initiated
batches (https://ircv3.net/specs/extensions/client-batch).

``BATCH +<ref> draft/multiline <target>`` opens a batch (one per connection); while it is open, the server
hands the connection's lines to :func:`collect` before their commands: ``@batch=<ref> PRIVMSG <target>
:<line>`` lines are kept (counted against ``multiline_max_bytes`` and ``multiline_max_lines`` as they come),
``BATCH -<ref>`` sends them as one message (salotto.server.handlers.messaging.send_multiline). Whatever is
wrong is answered with ``FAIL BATCH <code>`` and drops the batch; its remaining lines are then ignored. A
batch still open after ``multiline_timeout_s`` is dropped the same way (:func:`expire`, from the tick).
The lines come through flood control like any others (the transports' fakelag runs before the server
sees a line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire
from salotto.proto.message import format_tags, parse
from salotto.server.context import Context
from salotto.server.handlers.messaging import MAX_CLIENT_TAG_BYTES, send_multiline
from salotto.server.multiline import BATCH_TYPE, CONCAT_TAG, OpenBatch

if TYPE_CHECKING:
    from salotto.server.state import Server

__all__ = ["collect", "expire", "handle_batch", "line_dropped", "stray"]

# Lines that may come while a batch is open without breaking it: keepalives, and leaving.
_PASS_THROUGH = frozenset({"PING", "PONG", "QUIT"})
# IRCv3 batch: a reference tag is letters, digits and "-" (also "_" and "." here, as some clients use).
_REF_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_MAX_REF_LEN = 64


def handle_batch(ctx: Context) -> None:
    # BATCH +<ref> draft/multiline <target>   (BATCH -<ref> of an open batch goes to collect())
    params = ctx.msg.params
    client = ctx.session  # the batch is the connection's
    server = ctx.server
    sign, ref = params[0][:1], params[0][1:]
    if sign not in ("+", "-") or not ref or len(ref) > _MAX_REF_LEN or not _REF_CHARS.issuperset(ref):
        ctx.fail("BATCH", "INVALID_REFTAG", params[0] or "*", description="Invalid batch reference tag")
        return
    if sign == "-":
        ctx.fail("BATCH", "MULTILINE_INVALID", description=f"No batch {ref} is open")
        return
    batch = OpenBatch(ref, params[2] if len(params) > 2 else "", None, ctx.label)
    ctx.label = None  # what answers the label is the batch's outcome, at BATCH - (or its FAIL)
    kind = params[1] if len(params) > 1 else ""
    if kind != BATCH_TYPE:
        _refuse(ctx, batch, "UNKNOWN_TYPE", ref, kind or "*", description="Unknown batch type")
        return
    if "batch" not in client.caps:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="draft/multiline needs the batch capability")
        return
    target = batch.target
    if not target or "," in target or len(params) > 3:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A multiline batch has one target")
        return
    tags = ctx.msg.tags
    client_tags = {k: v for k, v in tags.items() if k[:1] == "+"} if tags else None
    if client_tags and len(format_tags(client_tags)) > MAX_CLIENT_TAG_BYTES:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="Client tags too long")
        return
    batch.tags = client_tags or None
    client.batch = batch
    server.open_batches[client] = server.clock() + server.config.multiline_timeout_s


def collect(ctx: Context) -> bool:
    """A line of a client that has a batch open (or dropped): True when it was the batch's (kept, refused
    or ignored), False when its command is to run as usual."""
    client = ctx.session  # the batch is the connection's
    batch = client.batch
    assert batch is not None
    msg = ctx.msg
    command = msg.command
    tags = msg.tags
    tagged = tags.get("batch") if tags else None
    params = msg.params
    closing = command == "BATCH" and bool(params) and params[0] == "-" + batch.ref
    if batch.dropped:
        # The rest of a batch that was refused is ignored until its BATCH -, however much else comes
        # meanwhile (a keepalive, a typing notice): none of its lines may go out as a message of its own.
        if closing:
            client.batch = None
            return True
        if tagged is not None:
            return True
        if command == "BATCH":
            client.batch = None  # a new batch: the old one is over
        return False
    if closing:
        _close(ctx, batch)
        return True
    if command == "BATCH":
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A batch is already open")
        return True
    if tagged is None:
        if command in _PASS_THROUGH:
            return False
        _refuse(ctx, batch, "MULTILINE_INVALID", description=f"{command} in the middle of a multiline batch",
                labelled=False)
        return False
    if tagged != batch.ref:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="Wrong batch reference tag")
        return True
    ctx.label = None  # a line of the batch is answered by the batch's outcome
    if command not in ("PRIVMSG", "NOTICE") or (batch.command is not None and command != batch.command):
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A multiline batch holds PRIVMSGs or NOTICEs, not both")
        return True
    if len(params) < 2:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A line without text")
        return True
    if casefold(params[0]) != casefold(batch.target):
        _refuse(ctx, batch, "MULTILINE_INVALID_TARGET", batch.target, params[0],
                description="Invalid multiline target")
        return True
    text = params[1]
    concat = CONCAT_TAG in tags if tags else False
    if concat and not text:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A blank line cannot continue the one before")
        return True
    config = ctx.server.config
    lines = batch.lines
    if len(lines) >= config.multiline_max_lines:
        _refuse(ctx, batch, "MULTILINE_MAX_LINES", str(config.multiline_max_lines),
                description="Multiline batch max-lines exceeded")
        return True
    batch.size += len(encode_wire(text)) + (1 if lines and not concat else 0)
    if batch.size > config.multiline_max_bytes:
        _refuse(ctx, batch, "MULTILINE_MAX_BYTES", str(config.multiline_max_bytes),
                description="Multiline batch max-bytes exceeded")
        return True
    batch.command = command
    lines.append((text, concat and bool(lines)))
    return True


def stray(ctx: Context) -> bool:
    """A line tagged for a client batch while none is open (one that never opened, or ended): True when it
    was answered here (``FAIL BATCH``) instead of running, as one of its lines must never go out alone."""
    tags = ctx.msg.tags
    ref = tags.get("batch") if tags else None
    if ref is None:
        return False
    ctx.label = None
    ctx.fail("BATCH", "MULTILINE_INVALID", description=f"No batch {ref} is open")
    return True


def line_dropped(ctx: Context) -> None:
    """The transport dropped a line of this client's as too long while its batch was open: the message
    would lack a line (or the line was not the batch's, which breaks it as well), so the batch is refused."""
    batch = ctx.session.batch
    if batch is not None and not batch.dropped:
        _refuse(ctx, batch, "MULTILINE_INVALID", description="A line of the batch was too long")


def _close(ctx: Context, batch: OpenBatch) -> None:
    client = ctx.session  # the batch is the connection's
    client.batch = None
    ctx.server.open_batches.pop(client, None)
    if batch.label is not None:
        ctx.label = batch.label
    if not any(text for text, _ in batch.lines):
        ctx.server.stats.multiline_refused += 1
        ctx.fail("BATCH", "MULTILINE_INVALID", description="A multiline message needs a line that is not blank")
        return
    send_multiline(ctx, batch)


def _refuse(ctx: Context, batch: OpenBatch, code: str, *context: str, description: str,
            labelled: bool = True) -> None:
    """``FAIL BATCH <code>``, labelled as the batch's answer (``labelled``: the line that broke it is the
    batch's own), and the batch is dropped: the rest of its lines will be ignored."""
    client = ctx.session  # the batch is the connection's
    server = ctx.server
    server.stats.multiline_refused += 1
    batch.drop()
    client.batch = batch
    server.open_batches.pop(client, None)
    if labelled and batch.label is not None:
        ctx.label = batch.label
    ctx.fail("BATCH", code, *context, description=description)


def expire(server: Server, now: float) -> None:
    """Drop the batches open past ``multiline_timeout_s`` (``FAIL BATCH TIMEOUT``). One whose client has
    a command waiting for the store is not the client's doing: its lines wait too; it is looked at again
    on the next tick."""
    for client, deadline in list(server.open_batches.items()):
        batch = client.batch
        if batch is None or batch.dropped:
            del server.open_batches[client]
            continue
        if now < deadline or client.waiting:
            continue
        ctx = Context(server, client.primary or client, parse("BATCH"), client)
        _refuse(ctx, batch, "TIMEOUT", batch.ref, description="Multiline batch left open too long")
        ctx.flush()
