"""A small SMTP server on 127.0.0.1 that keeps what it receives: a real socket and a real SMTP
exchange for code that sends mail (smtplib), without a mail system on the machine."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes
from email.message import Message
from types import TracebackType


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.strip().split(b" ", 1)[0].upper()
            if verb in (b"EHLO", b"HELO"):
                self._say("250 sink")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self._say("250 OK")
            elif verb == b"DATA":
                self._say("354 go ahead")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.sink.received.append(message_from_bytes(bytes(data)))
                self._say("250 queued")
            elif verb == b"QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: SmtpSink


class SmtpSink:
    """``with SmtpSink() as sink:`` listens on ``sink.address`` (HOST:PORT); ``sink.received`` holds
    the messages."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.sink = self
        host, port = self._server.server_address[:2]
        self.address = f"{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
