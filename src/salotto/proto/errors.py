"""The protocol layer's exceptions.

``RemoteProtocolError`` and its subclasses mean the peer sent something we cannot use: answer it
and carry on. Anything else escaping from ``proto/`` is a bug of ours.
"""

__all__ = ["MalformedMessage", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """The peer broke the protocol; the connection can go on."""


class MalformedMessage(RemoteProtocolError):
    """A line that is not an IRC message (no command, tags or source alone)."""
