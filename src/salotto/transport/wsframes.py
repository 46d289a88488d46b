"""The WebSocket frames of an open connection, server side (RFC 6455 section 5): what a client sends, and
the control frames the server answers with.

The websockets library does the handshake (salotto.transport.websocket); once it is over this takes its
place, with the part of its sans-I/O interface the IRC protocol uses (receive_data, events_received,
receive_eof, data_to_send, state, send_close, fail, close_expected, parser_exc). It exists for memory:
the library's protocol object, its generators and buffers cost some 1.4 KiB per open connection, this
about 200 bytes (docs/benchmarks.md, "Where the memory per connection goes"). Frames it hands on are
the library's :class:`~websockets.frames.Frame`, unmasked; the masking is the library's (C) function.
"""

from __future__ import annotations

import struct

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import SEND_EOF, State

try:  # the library's C speedup when it is built, as its own parser does
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["FrameLayer"]

_CONTROL = (Opcode.CLOSE, Opcode.PING, Opcode.PONG)
_OPCODES = {int(op): op for op in Opcode}


def _frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented server frame (a control frame's payload is at most 125 bytes)."""
    return bytes((0x80 | opcode, len(payload))) + payload


class FrameLayer:
    """The frames of one open WebSocket connection (server side)."""

    __slots__ = ("_buffer", "_message_size", "_out", "events", "max_size", "parser_exc", "state")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.state = State.OPEN
        self._buffer = b""  # received bytes not yet a whole frame
        self._message_size = -1  # bytes of the fragmented message in progress; -1: none
        self._out: list[bytes] | None = None  # frames (and SEND_EOF) to send
        self.events: list[Frame] | None = None  # frames received, not yet taken
        self.parser_exc: Exception | None = None  # why the parsing stopped (PayloadTooBig: close code 1009)

    # -- in ---------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED or self.parser_exc is not None:
            return  # a failed connection reads nothing more
        buffer = self._buffer + data if self._buffer else data
        start = 0
        end = len(buffer)
        while end - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length = second & 0x7F
            at = start + 2
            if length == 126:
                if end - at < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, at)
                at += 2
            elif length == 127:
                if end - at < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, at)
                at += 8
            opcode = _OPCODES.get(first & 0x0F)
            # Checked at every read until the frame is whole, so the check changes nothing: the size of
            # the message in progress is updated once the frame is taken.
            message_size = self._valid(first, second, opcode, length)
            if message_size is None:
                return
            if end - at < 4 + length:
                break
            mask = buffer[at:at + 4]
            payload = apply_mask(buffer[at + 4:at + 4 + length], mask)
            start = at + 4 + length
            self._message_size = message_size
            self._received(Frame(opcode, payload, fin=bool(first & 0x80)))  # type: ignore[arg-type]
            if self._ended():
                return
        self._buffer = buffer[start:] if start < end else b""

    def _ended(self) -> bool:
        return self.state is State.CLOSED or self.parser_exc is not None

    def _valid(self, first: int, second: int, opcode: Opcode | None, length: int) -> int | None:
        """Section 5.2's rules for a client frame's header, and the size limit; else fail the connection
        (None). The size of the fragmented message in progress once this frame is taken (-1: none)."""
        fin = first & 0x80
        if first & 0x70:
            return self._protocol_error("reserved bits must be 0")
        if not second & 0x80:
            return self._protocol_error("incorrect masking")
        if opcode is None:
            return self._protocol_error("invalid opcode")
        if opcode in _CONTROL:
            if not fin:
                return self._protocol_error("fragmented control frame")
            if length > 125:
                return self._protocol_error("control frame too long")
            return self._message_size  # it may come between the fragments of a message
        if opcode is Opcode.CONT:
            if self._message_size < 0:
                return self._protocol_error("unexpected continuation frame")
            size = self._message_size + length
        else:
            if self._message_size >= 0:
                return self._protocol_error("expected a continuation frame")
            size = length
        if size > self.max_size:
            self.parser_exc = PayloadTooBig(size, self.max_size)
            self.fail(CloseCode.MESSAGE_TOO_BIG, f"message too big: {size} bytes, at most {self.max_size}")
            return None
        return -1 if fin else size

    def _protocol_error(self, reason: str) -> int | None:
        """Fail the connection with 1002; None, what _valid returns then."""
        self.parser_exc = ProtocolError(reason)
        self.fail(CloseCode.PROTOCOL_ERROR, reason)
        return None

    def _received(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PING:
            if self.state is State.OPEN:
                self._send(_frame(Opcode.PONG, bytes(frame.data)))
            return  # the IRC side needs neither pings nor pongs
        if opcode is Opcode.PONG:
            return
        if opcode is Opcode.CLOSE:
            data = bytes(frame.data)
            if data:  # section 5.5.1: a code of section 7.4.1, then a UTF-8 reason; else we fail
                try:
                    Close.parse(data)
                except ProtocolError as exc:
                    self._protocol_error(str(exc))
                    return
                except UnicodeDecodeError:
                    self.parser_exc = ProtocolError("invalid UTF-8 in a close reason")
                    self.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a close reason")
                    return
            if self.state is State.OPEN:  # their close: ours answers it with the same code, then the end
                self._send(_frame(Opcode.CLOSE, data[:2]))
            self._send_eof()
        if self.events is None:
            self.events = []
        self.events.append(frame)

    def receive_eof(self) -> None:
        if self.state is not State.CLOSED:
            self._send_eof()

    def events_received(self) -> list[Frame]:
        events = self.events
        self.events = None
        return events or []

    # -- out --------------------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        out = self._out
        self._out = None
        return out or []

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Our close frame; the connection ends when the client's answers it (close_expected)."""
        if self.state is State.OPEN:
            self._send(_frame(Opcode.CLOSE, Close(code, reason).serialize()))
            self.state = State.CLOSING

    def fail(self, code: int, reason: str = "") -> None:
        """Section 7.1.7: our close frame, then the end of the connection at once."""
        if self.state is State.OPEN:
            self._send(_frame(Opcode.CLOSE, Close(code, reason[:100]).serialize()))
        self._send_eof()

    def close_expected(self) -> bool:
        """Whether we wait for the client to close (its close frame, then the TCP connection)."""
        return self.state is State.CLOSING

    def _send(self, data: bytes) -> None:
        if self._out is None:
            self._out = []
        self._out.append(data)

    def _send_eof(self) -> None:
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self._send(SEND_EOF)
