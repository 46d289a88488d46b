"""Messages for many recipients, serialized once per tag variant.

A channel message goes to clients that want different tags (message-tags, server-time,
account-tag). :class:`Outgoing` builds the bytes for each variant the first time a recipient needs
it and hands the same bytes object to every other recipient of that variant.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from salotto.proto.message import escape_tag_value, format_line
from salotto.server.client import TAG_ACCOUNT, TAG_MESSAGE_TAGS, TAG_MULTILINE, TAG_SERVER_TIME, Client

__all__ = ["Outgoing", "format_server_time"]

# Commands with a free-text parameter, and how many parameters they have with it: that text always
# gets its colon, even when one word, since naive clients and bots look for " :" to find it.
_TEXT_PARAM_COUNT = {"PRIVMSG": 2, "NOTICE": 2, "QUIT": 1, "PART": 2, "KICK": 3, "TOPIC": 2, "AWAY": 1, "SETNAME": 1,
                    "REDACT": 3}


def format_server_time(wall: float) -> str:
    """IRCv3 server-time: ISO 8601 UTC with milliseconds (``2026-11-24T12:00:00.000Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall * 1000) % 1000:03d}Z"


class Outgoing:
    """One message to deliver: its line without tags, and the tags some recipients get."""

    __slots__ = ("_account", "_base", "_bot", "_client_tags", "_variants", "_wall", "msgid")

    def __init__(
        self,
        source: str,
        command: str,
        params: list[str],
        *,
        wall: float,
        msgid: str | None = None,
        account: str | None = None,
        client_tags: Mapping[str, str] | None = None,
        bot: bool = False,
    ) -> None:
        if params and _TEXT_PARAM_COUNT.get(command) == len(params):
            self._base = f"{format_line(command, params[:-1], source=source)} :{params[-1]}\r\n"
        else:
            self._base = format_line(command, params, source=source) + "\r\n"
        self._wall = wall
        self.msgid = msgid
        self._account = account
        self._client_tags = client_tags
        self._bot = bot  # the source is a bot (user mode +B): the "bot" tag, with message-tags
        self._variants: dict[int, bytes] = {}

    @classmethod
    def text(
        cls,
        source: str,
        command: str,
        target: str,
        text: str | None,
        wall: float,
        msgid: str | None,
        account: str | None,
        client_tags: Mapping[str, str] | None,
        bot: bool,
    ) -> Outgoing:
        """A PRIVMSG or NOTICE with ``text`` (a TAGMSG with None) to ``target``, a nick or channel name as
        the server holds it, from ``source``, a client's prefix: parts already known to make a valid line
        (a parsed parameter never holds CR, LF or NUL), so built without :func:`format_line`'s checks."""
        out = cls.__new__(cls)
        out._base = (f":{source} {command} {target}\r\n" if text is None
                     else f":{source} {command} {target} :{text}\r\n")
        out._wall = wall
        out.msgid = msgid
        out._account = account
        out._client_tags = client_tags
        out._bot = bot
        out._variants = {}
        return out

    def variant(self, flags: int) -> bytes:
        """The bytes for a recipient whose ``tag_flags`` are ``flags``."""
        return self._variants.get(flags) or self._variant_built(flags)

    def _build(self, flags: int) -> bytes:
        tags: list[str] = []
        if flags & TAG_MESSAGE_TAGS:
            if self._client_tags:
                for key, value in self._client_tags.items():
                    tags.append(f"{key}={escape_tag_value(value)}" if value else key)
            if self.msgid:
                tags.append("msgid=" + self.msgid)
            if self._bot:
                tags.append("bot")
        if flags & TAG_SERVER_TIME:
            tags.append("time=" + format_server_time(self._wall))
        if flags & TAG_ACCOUNT and self._account:
            tags.append("account=" + self._account)
        if not tags:
            return self._base.encode("utf-8", "surrogateescape")
        return ("@" + ";".join(tags) + " " + self._base).encode("utf-8", "surrogateescape")

    def deliver(self, recipients: Iterable[Client], exclude: Client | None = None) -> int:
        """Write this message to every recipient but ``exclude``; return how many got it."""
        variants = self._variants
        sent = 0
        last_flags = -1
        data = b""
        for client in recipients:
            if client is exclude:
                continue
            flags = client.tag_flags
            if flags != last_flags:  # recipients mostly share their flags: skip the lookup then
                last_flags = flags
                data = variants.get(flags) or self._variant_built(flags)
            conn = client.conn  # Connection.write, inlined: this runs for every recipient
            outbox = conn.outbox
            if not outbox:
                outbox = conn.mark_pending()
            outbox.append(data)
            sent += 1
        return sent

    def _variant_built(self, flags: int) -> bytes:
        if not flags:  # no tags at all (most clients): _build's answer without its checks
            data = self._variants[0] = self._base.encode("utf-8", "surrogateescape")
            return data
        if flags & TAG_MULTILINE:  # the same bytes as without: one line is one line
            data = self._variants[flags] = self.variant(flags & ~TAG_MULTILINE)
            return data
        data = self._variants[flags] = self._build(flags)
        return data
