"""The client core: connection, registration, capabilities, buffers and commands; no GUI.

A script chats like this::

    client = Client("127.0.0.1", 6667, SessionConfig(nick="bot"))
    client.start()
    client.wait_until(lambda s: s.get_buffer("#lobby") is not None and s.get_buffer("#lobby").joined)
    client.session.say("#lobby", "hello")
    client.pump()

Sharing a file is ``client.upload(path, "#lobby")`` (a :class:`Transfer`), searching is
``client.session.search(words, target)`` (results in ``client.session.search_results``).
"""

from salotto.clients.core.client import Client, Transfer
from salotto.clients.core.commands import COMMANDS
from salotto.clients.core.completion import Completer, InputHistory
from salotto.clients.core.files import Preview, UploadError
from salotto.clients.core.model import (
    SERVER_KEY,
    Buffer,
    BufferKind,
    Change,
    ChangeKind,
    Line,
    LineKind,
    Member,
)
from salotto.clients.core.search import SearchResult, SearchResults
from salotto.clients.core.session import Session, SessionConfig

__all__ = [
    "COMMANDS",
    "SERVER_KEY",
    "Buffer",
    "BufferKind",
    "Change",
    "ChangeKind",
    "Client",
    "Completer",
    "InputHistory",
    "Line",
    "LineKind",
    "Member",
    "Preview",
    "SearchResult",
    "SearchResults",
    "Session",
    "SessionConfig",
    "Transfer",
    "UploadError",
]
