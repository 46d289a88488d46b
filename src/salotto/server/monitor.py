"""MONITOR (https://ircv3.net/specs/extensions/monitor): who watches which nick, and telling them.

``Server.monitors`` maps a casefolded nick to the clients watching it; an entry goes away with its
last watcher. Each watcher keeps its own list in ``Client.monitoring`` (casefolded nick -> the nick as
the client gave it), created by its first ``MONITOR +``: a client that never uses MONITOR costs one
empty slot. Both sides are bounded by ``monitor_max_targets`` per client, and a client's entries go
when it disconnects.

The numerics reach the watchers through the backplane (``to_watchers``); with extended-monitor, the
backplane's ``to_peers`` adds watchers to who hears of a client's changes.

A nick is online when a registered client holds it: it comes online when registration completes or a
client renames to it, and goes offline on a quit (QUIT, disconnect, KILL) or a rename away from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold
from salotto.proto.numerics import RPL_MONOFFLINE, RPL_MONONLINE
from salotto.server.backplane import EXTENDED_MONITOR

if TYPE_CHECKING:
    from salotto.server.client import Client
    from salotto.server.state import Server

__all__ = ["EXTENDED_MONITOR", "add", "came_online", "clear", "forget", "nick_changed", "remove", "went_offline"]


def add(server: Server, client: Client, targets: Iterable[str]) -> list[str]:
    """Watch ``targets`` (valid nicks, as the client gave them) up to the limit; return those refused
    for want of room. A target already watched stays as it was first given."""
    watching = client.monitoring
    if watching is None:
        watching = client.monitoring = {}
    limit = server.config.monitor_max_targets
    refused: list[str] = []
    for target in targets:
        target_cf = casefold(target)
        if target_cf in watching:
            continue
        if len(watching) >= limit:
            refused.append(target)
            continue
        watching[target_cf] = target
        server.monitors.setdefault(target_cf, set()).add(client)
    return refused


def remove(server: Server, client: Client, targets: Iterable[str]) -> None:
    watching = client.monitoring
    if watching is None:
        return
    for target in targets:
        target_cf = casefold(target)
        if watching.pop(target_cf, None) is not None:
            _unindex(server, client, target_cf)


def clear(server: Server, client: Client) -> None:
    """``MONITOR C``: the list is emptied, and kept (the client uses MONITOR)."""
    watching = client.monitoring
    if watching is None:
        return
    for target_cf in watching:
        _unindex(server, client, target_cf)
    watching.clear()


def forget(server: Server, client: Client) -> None:
    """``client`` is leaving: take it out of the index."""
    if client.monitoring is not None:
        clear(server, client)
        client.monitoring = None


def _unindex(server: Server, client: Client, target_cf: str) -> None:
    watchers = server.monitors.get(target_cf)
    if watchers is not None:
        watchers.discard(client)
        if not watchers:
            del server.monitors[target_cf]


def came_online(server: Server, client: Client) -> None:
    """``client`` (registered) now holds its nick: 730 to whoever watches it."""
    if server.monitors or server.clustered:  # nobody watches anything: nothing to tell (the common case)
        server.backplane.to_watchers(client.nick, RPL_MONONLINE, client.prefix)


def went_offline(server: Server, nick: str) -> None:
    """Nobody holds ``nick`` any more: 731 to whoever watches it."""
    if server.monitors or server.clustered:
        server.backplane.to_watchers(nick, RPL_MONOFFLINE, nick)


def nick_changed(server: Server, client: Client, old_nick: str) -> None:
    """``client`` was ``old_nick``: that one is offline, the new one online. Letters of another case
    are the same nick, online all along."""
    if casefold(old_nick) != client.nick_cf:
        went_offline(server, old_nick)
        came_online(server, client)
