"""A raw-socket IRC client for end-to-end tests: send lines, wait for the lines you expect."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from salotto.proto import Message, parse

__all__ = ["RawClient"]


class RawClient:
    def __init__(
        self, host: str, port: int, timeout_s: float = 5.0, *, tls: ssl.SSLContext | None = None,
        source: str | None = None,
    ) -> None:
        """``source``: the local address to connect from (any 127.x.y.z is this machine: a test's other
        "addresses")."""
        sock = socket.create_connection((host, port), timeout=timeout_s,
                                        source_address=(source, 0) if source else None)
        self.sock = tls.wrap_socket(sock, server_hostname="localhost") if tls is not None else sock
        self.timeout_s = timeout_s
        self._buffer = b""
        self.received: list[Message] = []
        self.nick = "*"

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_line(self, deadline: float) -> str | None:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def expect(self, command: str, *, timeout_s: float | None = None, **match: str) -> Message:
        """Read until a message with ``command`` (and params[i] == value for ``p<i>=value``) arrives."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        seen: list[str] = []
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise AssertionError(f"no {command} {match} within timeout; saw: {seen[-15:]}")
            seen.append(line)
            msg = parse(line)
            self.received.append(msg)
            if msg.command == "PING":
                self.send(f"PONG :{msg.params[-1]}")
            if msg.command != command:
                continue
            if all(len(msg.params) > int(k[1:]) and msg.params[int(k[1:])] == v for k, v in match.items()):
                return msg

    def lines_until(self, command: str, *, timeout_s: float | None = None, skip_first: bool = False) -> list[Message]:
        """Every message up to and including the first ``command`` (the second with ``skip_first``)."""
        start = len(self.received)
        self.expect(command, timeout_s=timeout_s)
        if skip_first:
            self.expect(command, timeout_s=timeout_s)
        return self.received[start:]

    def read_line(self, timeout_s: float | None = None) -> str | None:
        """The next line, or None when none came within the timeout. Raises ConnectionError at EOF."""
        return self._read_line(time.monotonic() + (timeout_s or self.timeout_s))

    def nothing_more(self, wait_s: float = 0.3) -> list[str]:
        """Lines that arrive within ``wait_s`` (for asserting that something was NOT sent)."""
        deadline = time.monotonic() + wait_s
        lines = []
        while True:
            line = self._read_line(deadline)
            if line is None:
                return lines
            lines.append(line)

    def register(self, nick: str, *, caps: list[str] | None = None) -> list[Message]:
        self.nick = nick
        if caps:
            self.send("CAP LS 302")
            self.send("CAP REQ :" + " ".join(caps))
            self.expect("CAP")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} test")
        if caps:
            self.send("CAP END")
        return self.lines_until("001")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
