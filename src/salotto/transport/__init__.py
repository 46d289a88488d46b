"""Transports: bytes to lines and back over TCP and TLS; limits on line length, rate and send queue."""

from salotto.transport.stream import IrcStreamProtocol

__all__ = ["IrcStreamProtocol"]
