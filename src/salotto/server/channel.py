"""A channel: members and their prefix modes, topic, modes and mask lists.

Handlers read a channel from here; it changes only through the server's channel registry
(:mod:`salotto.server.registry`), whose local implementation changes these objects in place and whose
clustered one keeps them as this node's replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from salotto.proto.modes import PREFIX_MODES, PREFIX_SYMBOLS
from salotto.proto.names import mask_match

if TYPE_CHECKING:
    from salotto.server.client import Client

__all__ = ["Channel", "ListEntry"]


@dataclass(slots=True)
class ListEntry:
    """One entry of a ban, exception or invite-exception list."""

    mask: str
    set_by: str
    set_at: int


class Channel:
    __slots__ = (
        "bans",
        "created",
        "excepts",
        "invex",
        "invited",
        "key",
        "limit",
        "members",
        "modes",
        "name",
        "name_cf",
        "permanent",
        "privileged",
        "topic",
        "topic_set_at",
        "topic_set_by",
        "with_devices",
    )

    def __init__(self, name: str, name_cf: str, created: int, *, permanent: bool = False) -> None:
        self.name = name
        self.name_cf = name_cf
        self.created = created
        self.permanent = permanent
        # Member -> its prefix mode letters ("", "o", "v", "ov"), in join order. Change it only
        # through add/set_status/discard, which keep ``privileged`` in step.
        self.members: dict[Client, str] = {}
        # Members with any prefix: what a large channel shows to non-operators, kept apart so
        # that a join to a 10,000-member channel does not scan 10,000 members.
        self.privileged: set[Client] = set()
        # Members with devices (Client.devices): what reaches a member reaches them too. Empty on a
        # server where nobody has a second device, so delivery checks it once per message.
        self.with_devices: set[Client] = set()
        self.topic = ""
        self.topic_set_by = ""
        self.topic_set_at = 0
        self.modes: set[str] = {"n", "t"}
        self.key: str | None = None
        self.limit: int | None = None
        self.bans: list[ListEntry] = []
        self.excepts: list[ListEntry] = []
        self.invex: list[ListEntry] = []
        # Client id -> whether the inviter could moderate the channel (see join_channel).
        self.invited: dict[int, bool] = {}

    def __repr__(self) -> str:
        return f"<Channel {self.name} {len(self.members)} members>"

    def add(self, client: Client, status: str) -> None:
        self.members[client] = status
        if status:
            self.privileged.add(client)
        if client.devices:
            self.with_devices.add(client)

    def set_status(self, client: Client, status: str) -> None:
        self.members[client] = status
        if status:
            self.privileged.add(client)
        else:
            self.privileged.discard(client)

    def discard(self, client: Client) -> None:
        self.members.pop(client, None)
        self.privileged.discard(client)
        self.with_devices.discard(client)

    def __contains__(self, client: object) -> bool:
        """Whether ``client`` is a member (``client in channel``)."""
        return client in self.members

    def size(self) -> int:
        return len(self.members)

    def status(self, client: Client) -> str | None:
        """A member's prefix mode letters ("" for none), None for someone not in the channel."""
        return self.members.get(client)

    def roster(self) -> Iterable[Client]:
        """The members, in join order (read only: membership changes through the channel registry)."""
        return self.members

    def operators(self) -> list[Client]:
        return [m for m in self.privileged if "o" in self.members[m]]

    def is_op(self, client: Client) -> bool:
        return "o" in self.members.get(client, "")

    def may_moderate(self, client: Client) -> bool:
        """Channel operators moderate their channel; server operators moderate every channel
        (the autojoin channels have no channel operator of their own)."""
        return client.is_oper or "o" in self.members.get(client, "")

    def can_speak(self, client: Client) -> bool:
        """Whether ``client`` may send to this channel (modes +n, +m and bans)."""
        status = self.members.get(client)
        if status is None:
            if "n" in self.modes:
                return False
        elif status:
            return True
        if "m" in self.modes:
            return False
        return not self.is_banned(client)

    def is_banned(self, client: Client) -> bool:
        if not self.bans:
            return False
        prefix = client.prefix
        if not any(mask_match(entry.mask, prefix) for entry in self.bans):
            return False
        return not any(mask_match(entry.mask, prefix) for entry in self.excepts)

    def is_invex(self, client: Client) -> bool:
        prefix = client.prefix
        return any(mask_match(entry.mask, prefix) for entry in self.invex)

    def mode_list(self, mode: str) -> list[ListEntry]:
        if mode == "b":
            return self.bans
        if mode == "e":
            return self.excepts
        return self.invex

    def prefix_of(self, client: Client, *, multi: bool) -> str:
        """The NAMES/WHO symbols of a member: the highest one, or all with multi-prefix."""
        status = self.members.get(client, "")
        if not status:
            return ""
        symbols = [sym for mode, sym in zip(PREFIX_MODES, PREFIX_SYMBOLS, strict=True) if mode in status]
        return "".join(symbols) if multi else symbols[0]

    def mode_string(self, *, show_key: bool) -> tuple[str, list[str]]:
        """The ``+modes`` and their arguments for RPL_CHANNELMODEIS."""
        letters = "".join(sorted(self.modes))
        args: list[str] = []
        if self.key is not None:
            letters += "k"
            args.append(self.key if show_key else "*")
        if self.limit is not None:
            letters += "l"
            args.append(str(self.limit))
        return "+" + letters, args
