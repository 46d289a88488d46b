"""Transport-independent server: state, the command table, fanout and limits. No I/O here."""

from salotto.server.state import Server

__all__ = ["Server"]
