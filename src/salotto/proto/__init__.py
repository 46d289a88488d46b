"""Sans-I/O IRC protocol: messages, framing, casemapping, names, modes and numerics.

Nothing here touches a socket, a file or an event loop; the server and the clients share it.
"""

from salotto.proto.casemap import CASEMAPPING, casefold
from salotto.proto.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from salotto.proto.framing import LINE_TOO_LONG, LineReader, LineTooLong, decode_line
from salotto.proto.message import Message, format_line, format_tags, parse

__all__ = [
    "CASEMAPPING",
    "LINE_TOO_LONG",
    "LineReader",
    "LineTooLong",
    "LocalProtocolError",
    "MalformedMessage",
    "Message",
    "RemoteProtocolError",
    "casefold",
    "decode_line",
    "format_line",
    "format_tags",
    "parse",
]
