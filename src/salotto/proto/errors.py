"""The protocol layer's exceptions.

``RemoteProtocolError`` and its subclasses mean the peer sent something we cannot use: answer it
and carry on. ``LocalProtocolError`` means we were about to send something that is not IRC: a bug
of ours, raised loudly so tests catch it. Anything else escaping from ``proto/`` is a bug too.
"""

__all__ = ["LocalProtocolError", "MalformedMessage", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """The peer broke the protocol; the connection can go on."""


class MalformedMessage(RemoteProtocolError):
    """A line that is not an IRC message (no command, tags or source alone, CR/LF/NUL inside)."""


class LocalProtocolError(ValueError):
    """We asked to serialize something the wire cannot carry (a space in a middle parameter,
    CR/LF/NUL anywhere, an invalid tag key). The caller has a bug; nothing was sent."""
