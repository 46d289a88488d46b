"""MARKREAD (https://ircv3.net/specs/extensions/read-marker): where a user stopped reading, per
channel and private conversation, shared by every device logged in to their account."""

from __future__ import annotations

from salotto.proto.framing import valid_utf8
from salotto.proto.names import is_valid_channel, is_valid_nick
from salotto.server.channel import Channel
from salotto.server.context import Context
from salotto.server.fanout import format_server_time
from salotto.server.handlers.history import parse_server_time
from salotto.server.markers import MarkersFull

__all__ = ["READ_MARKER_CAP", "handle_markread", "marker_on_join"]

READ_MARKER_CAP = "draft/read-marker"


def handle_markread(ctx: Context) -> None:
    # MARKREAD <target> [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]
    params = ctx.msg.params
    if not params or not params[0]:
        ctx.fail("MARKREAD", "NEED_MORE_PARAMS", description="Not enough parameters")
        return
    server = ctx.server
    client = ctx.client
    target = params[0]
    config = server.config
    if valid_utf8(target) is not target or not (
        is_valid_channel(target, config.channel_max_len) or is_valid_nick(target, config.nick_max_len)
    ):
        ctx.fail("MARKREAD", "INVALID_PARAMS", target, description="Invalid target")
        return
    accounts = server.accounts
    account = client.account
    if accounts is None or account is None:
        ctx.fail("MARKREAD", "ACCOUNT_REQUIRED", target, description="Log in to an account to keep read markers")
        return
    markers = accounts.markers
    if len(params) < 2:
        ctx.from_server("MARKREAD", target, _shown(markers.get(account, target)))
        return
    kind, _, value = params[1].partition("=")
    when = parse_server_time(value) if kind == "timestamp" else None
    if when is None or when < 0:  # (before 1970: nothing to mark, and no time IRC can show)
        ctx.fail("MARKREAD", "INVALID_PARAMS", target, description="Expected timestamp=YYYY-MM-DDThh:mm:ss.sssZ")
        return
    # Nothing can have been read after now: a clock ahead, or a made-up time, must not hide what comes next.
    when = min(when, int(server.wallclock() * 1000) / 1000)
    try:
        marker, moved = markers.advance(account, target, when)
    except MarkersFull:
        ctx.fail("MARKREAD", "INTERNAL_ERROR", target, description="This server keeps no more read markers")
        return
    shown = _shown(marker)
    ctx.from_server("MARKREAD", target, shown)
    if moved:
        server.stats.read_markers += 1
        server.backplane.to_account(
            account, server.outgoing(server.name, "MARKREAD", [target, shown]), cap=READ_MARKER_CAP, exclude=ctx.session
        )


def marker_on_join(ctx: Context, channel: Channel) -> None:
    """The joining client's marker on ``channel``, which the spec wants between the JOIN and the end of
    NAMES, so that a client knows what is unread before the history it is about to fetch."""
    client = ctx.client
    accounts = ctx.server.accounts
    if accounts is None or client.account is None or READ_MARKER_CAP not in ctx.session.caps:
        return
    ctx.from_server("MARKREAD", channel.name, _shown(accounts.markers.get(client.account, channel.name)))


def _shown(marker: float | None) -> str:
    return "*" if marker is None else "timestamp=" + format_server_time(marker)
