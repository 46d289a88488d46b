"""What travels between nodes: messages to deliver, users and channels, as JSON.

JSON and nothing that runs code on load (no pickle): whoever can write to Redis can make a node deliver
lines, not run code in it. Every payload is a JSON array whose first element says what it is.
"""

from __future__ import annotations

import json
from typing import Any

from salotto.server.channel import Channel, ListEntry
from salotto.server.client import Client, Connection, _Dropped
from salotto.server.fanout import Outgoing
from salotto.server.multiline import MultilineOutgoing

__all__ = [
    "RemoteConnection", "channel_meta", "dumps", "loads", "pack_outgoing", "unpack_outgoing", "user_fields",
]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
dumps = _encoder.encode
loads = json.loads

# The fields of each kind of Outgoing that make its bytes (not its cache of them).
_OUT_SLOTS = ("_base", "_wall", "msgid", "_account", "_client_tags", "_bot")
_MULTI_SLOTS = (*_OUT_SLOTS, "_lines", "_batch_tag", "_end")


def pack_outgoing(out: Outgoing) -> list[Any]:
    """``out`` as JSON-ready values: its class and the fields its bytes are made of."""
    if type(out) is Outgoing:
        return [0, out._base, out._wall, out.msgid, out._account, out._client_tags, out._bot]
    if isinstance(out, MultilineOutgoing):
        return [1, *(getattr(out, name) for name in _MULTI_SLOTS)]
    raise TypeError(f"cannot send a {type(out).__name__} to other nodes")


def unpack_outgoing(packed: list[Any]) -> Outgoing:
    """The Outgoing :func:`pack_outgoing` packed: the same bytes for every variant."""
    kind = packed[0]
    out: Outgoing
    if kind == 0:
        out = Outgoing.__new__(Outgoing)
        out._base, out._wall, out.msgid, out._account, out._client_tags, out._bot = packed[1:7]
    elif kind == 1:
        out = MultilineOutgoing.__new__(MultilineOutgoing)
        for name, value in zip(_MULTI_SLOTS, packed[1:], strict=True):
            setattr(out, name, value)
    else:
        raise ValueError(f"unknown message kind {kind!r}")
    out._variants = {}
    return out


class RemoteConnection:
    """The connection of a user on another node: nothing is written here (its own node delivers to it)."""

    __slots__ = ("node", "peer_ip", "uid")
    transport_name = "remote"
    outbox: list[bytes] = _Dropped()

    def __init__(self, node: str, peer_ip: str, uid: str) -> None:
        self.node = node
        self.peer_ip = peer_ip
        self.uid = uid

    def mark_pending(self) -> list[bytes]:
        return self.outbox

    def write(self, data: bytes) -> None:
        return

    def close(self, reason: str) -> None:
        return


def is_remote(conn: Connection) -> bool:
    return type(conn) is RemoteConnection


def user_fields(client: Client) -> dict[str, Any]:
    """What other nodes show of a user: WHOIS, WHO, bans, the prefix of what it says."""
    return {
        "nick": client.nick, "user": client.user, "host": client.host, "ip": client.ip,
        "realname": client.realname, "account": client.account, "away": client.away,
        "modes": "".join(sorted(client.modes)), "signon": client.signon, "reg": client.registered,
        "tls": client.conn.transport_name,
    }


def apply_user_fields(client: Client, fields: dict[str, Any]) -> None:
    """A remote user as its node described it (the nick is the registry's business)."""
    client.user = fields["user"]
    client.host = fields["host"]
    client.ip = fields["ip"]
    client.realname = fields["realname"]
    client.account = fields["account"]
    client.away = fields["away"]
    client.modes = frozenset(fields["modes"])
    client.signon = fields["signon"]
    client.registered = bool(fields["reg"])


def channel_meta(channel: Channel, invited: dict[str, bool]) -> dict[str, Any]:
    """A channel's state but its members (they are a hash of their own)."""
    return {
        "name": channel.name, "created": channel.created, "permanent": channel.permanent,
        "topic": channel.topic, "topic_by": channel.topic_set_by, "topic_at": channel.topic_set_at,
        "modes": "".join(sorted(channel.modes)), "key": channel.key, "limit": channel.limit,
        "b": [[e.mask, e.set_by, e.set_at] for e in channel.bans],
        "e": [[e.mask, e.set_by, e.set_at] for e in channel.excepts],
        "I": [[e.mask, e.set_by, e.set_at] for e in channel.invex],
        "inv": invited,
    }


def apply_channel_meta(channel: Channel, meta: dict[str, Any]) -> None:
    """``meta`` (from :func:`channel_meta`) onto the replica ``channel`` (invitations: the caller's)."""
    channel.name = meta["name"]
    channel.created = meta["created"]
    channel.permanent = meta["permanent"]
    channel.topic, channel.topic_set_by, channel.topic_set_at = meta["topic"], meta["topic_by"], meta["topic_at"]
    channel.modes = set(meta["modes"])
    channel.key = meta["key"]
    channel.limit = meta["limit"]
    channel.bans = [ListEntry(*e) for e in meta["b"]]
    channel.excepts = [ListEntry(*e) for e in meta["e"]]
    channel.invex = [ListEntry(*e) for e in meta["I"]]
