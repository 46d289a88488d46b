"""One node of a cluster: its replica of the network's users and channels, kept in step through Redis.

Every node holds every user (its own and, as :class:`RemoteConnection` clients, the others') and every
channel, as the handlers read them (docs/cluster.md has the picture). State changes are Lua scripts
(:mod:`salotto.cluster.scripts`) that change Redis and publish the change, numbered, on the state channel;
every node, the one that asked included, applies them in that order. A change that depends on what a node
read (a join against +l, a MODE) carries the number of the channel's last change as the node saw it, and
is refused by Redis when that is stale: the node waits until its replica has caught up and decides again.

Deliveries are published too: a channel's messages on the channel's own Redis channel (subscribed only by
nodes with members there), a private message on its recipient's node's channel, what goes to a user's
peers on the state channel. A node delivers to its own clients only when its own publication comes back:
whatever node they are on, members see a channel's messages in Redis's order. What it delivers then is
the audience as it was when the command ran (a KICKed member still gets the KICK).

Redis gone: the node serves its own users alone (messages reach them, history keeps them), answers what it
cannot decide alone (a nick change, a join) with 437 "try again", and once Redis is back re-asserts its own
users and reloads the rest. A node that stops (kill -9) is noticed when its liveness key expires: another
node removes what it held, and every node shows its users quitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from salotto.cluster import scripts
from salotto.cluster.link import LinkDown, RedisLink
from salotto.cluster.wire import (
    RemoteConnection,
    apply_user_fields,
    dumps,
    loads,
    pack_outgoing,
    unpack_outgoing,
    user_fields,
)
from salotto.proto.casemap import casefold
from salotto.proto.numerics import ERR_UNAVAILRESOURCE, RPL_MONOFFLINE
from salotto.server.backplane import LocalBackplane
from salotto.server.channel import Channel, ListEntry
from salotto.server.client import NO_CHANNELS, Client
from salotto.server.registry import (
    JoinRequest,
    JoinResult,
    ModeContext,
    ModeOutcome,
    apply_modes,
    entry_refusal,
)
from salotto.storage.base import NO_TAGS, HistoryMessage

if TYPE_CHECKING:
    from salotto.config import Config
    from salotto.proto.modes import ModeChange
    from salotto.server.fanout import Outgoing
    from salotto.server.state import Server
    from salotto.storage.base import Storage
    from salotto.storage.outcome import Outcome

__all__ = ["ClusterBackplane", "ClusterChannelRegistry", "ClusterNickRegistry", "ClusterNode", "chan_key", "inbox"]

log = logging.getLogger("salotto.cluster")

P = scripts.PREFIX
STATE = P + "s"
K_SEQ, K_USERS, K_NICKS, K_CHANS, K_CV, K_NODES = (P + k for k in ("seq", "users", "nicks", "chans", "cv", "nodes"))
# A resynchronisation that Redis refused (full, read-only) is tried again after this long.
RECOVER_RETRY_S = 1.0
# How old LUSERS's count of the other nodes' users may be.
LUSERS_CACHE_S = 1.0
UNAVAILABLE = "The network is not reachable from this server now; try again in a moment"


def chan_key(name_cf: str) -> str:
    return P + "c:" + name_cf


def inbox(node: str) -> str:
    return P + "n:" + node


def _list_json(entries: list[ListEntry]) -> str:
    return dumps([[e.mask, e.set_by, e.set_at] for e in entries])


def channel_fields(channel: Channel) -> dict[str, str]:
    """A channel's state as the fields of its ``ch:`` hash."""
    return {
        "name": channel.name, "created": str(channel.created), "permanent": "1" if channel.permanent else "0",
        "topic": dumps([channel.topic, channel.topic_set_by, channel.topic_set_at]),
        "modes": dumps(["".join(sorted(channel.modes)), channel.key, channel.limit]),
        "b": _list_json(channel.bans), "e": _list_json(channel.excepts), "I": _list_json(channel.invex),
    }


def _apply_fields(channel: Channel, fields: dict[str, str]) -> None:
    if "name" in fields:
        channel.name = fields["name"]
    if "created" in fields:
        channel.created = int(fields["created"])
    if "permanent" in fields:
        channel.permanent = channel.permanent or fields["permanent"] == "1"
    if "topic" in fields:
        channel.topic, channel.topic_set_by, channel.topic_set_at = loads(fields["topic"])
    if "modes" in fields:
        modes, channel.key, channel.limit = loads(fields["modes"])
        channel.modes = set(modes)
    for letter in "beI":
        if letter in fields:
            entries = [ListEntry(*e) for e in loads(fields[letter])]
            if letter == "b":
                channel.bans = entries
            elif letter == "e":
                channel.excepts = entries
            else:
                channel.invex = entries


def _text(raw: bytes) -> str:
    """What Redis gives back, as the server holds text: bytes that are not UTF-8 as lone surrogates (IRC
    relays bytes; the link sends them so, see RedisLink)."""
    return raw.decode("utf-8", "surrogateescape")


def _flat(pairs: list[bytes]) -> dict[str, str]:
    return {_text(pairs[i]): _text(pairs[i + 1]) for i in range(0, len(pairs), 2)}


class _Pending:
    """A state change this node asked for, whose answer waits for its event (or a snapshot past it)."""

    __slots__ = ("finish", "seq")

    def __init__(self, finish: Callable[[bool], None]) -> None:
        self.finish = finish  # True: its event was applied; False: it is known not to have happened
        self.seq = 0


class ClusterNode:
    """The replica, the link, and the three seams the Server is given (``nicks``, ``channels``,
    ``backplane``)."""

    def __init__(self, config: Config) -> None:
        self.name = config.node_name or config.server_name
        self.timeout_s = config.cluster_node_timeout_s
        self.server: Server | None = None
        self.link = RedisLink(config.redis_url, on_message=self._on_message, on_up=self._on_up,
                              on_down=self._on_down, before_send=self._before_send)
        for name, lua in (("apply", scripts.APPLY), ("snapshot", scripts.SNAPSHOT), ("reap", scripts.REAP),
                          ("assert", scripts.ASSERT), ("dead", scripts.DEAD_NODES)):
            self.link.register_script(name, lua)
        # The replica. uid -> user (this node's and the others'); nick -> holder; channels and the number
        # of the state change that last changed each; this node's members of each channel.
        self.users: dict[str, Client] = {}
        self.nicks: dict[str, Client] = {}
        self.chans: dict[str, Channel] = {}
        self.chan_seq: dict[str, int] = {}
        self.invites: dict[str, dict[str, bool]] = {}
        self.local_members: dict[str, dict[Client, str]] = {}
        self.remote_ids: dict[int, Client] = {}
        self._remote_ids = itertools.count(-1, -1)
        self.seq = 0
        self.subscribed: set[str] = set()
        self.joining: dict[str, int] = {}
        # Our own state changes waiting for their event, by op id.
        self._ops = itertools.count(1)
        # Keyed "NODE:N": events of every node carry their op id, and another node's must not finish ours.
        self.pending: dict[str, _Pending] = {}
        # Waiting for the replica to reach a seq (a refused check): (seq, retry).
        self.waiters: list[tuple[int, Callable[[], None]]] = []
        # Deliveries to this node's clients, waiting for their publication to come back: (token, deliver).
        self._tokens = itertools.count(1)
        self.stash: deque[tuple[int, Callable[[], object]]] = deque()
        self._marker_needed = 0
        self._last_token_sent = 0
        # While a snapshot loads: state events that came meanwhile.
        self._loading = False
        self._buffered: list[tuple[int, list[Any]]] = []
        # This node's uids in each channel as the snapshot just applied has them (for the joins it covered).
        self.snapshot_members: dict[str, dict[str, str]] = {}
        self._load_lock = asyncio.Lock()
        # Redis holds this node's users and memberships (False from losing Redis until they are asserted):
        # only then may a snapshot take this node's members out of a channel.
        self.asserted = True
        self._autojoin: list[tuple[str, str, int]] = []
        self._tasks: list[asyncio.Task[None]] = []
        # History's copy in Redis: messages committed so far, and where each batch copied ends.
        self._committed = 0
        self._processed_base = 0
        self._journal_marks: deque[int] = deque()
        self._orphans: list[HistoryMessage] = []
        # Nodes whose users Redis lost (it restarted empty), until they re-assert them or time runs out.
        self._limbo: dict[str, float] = {}
        self.started = False
        self.closing = False
        self.counted: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.counted_at = -LUSERS_CACHE_S
        self.boot_id = os.urandom(6).hex()
        self.nicks_view = ClusterNickRegistry(self)
        self.channels_view = ClusterChannelRegistry(self)
        self.backplane = ClusterBackplane(self)
        self.local_bp: LocalBackplane | None = None
        # Metrics.
        self.resyncs = 0
        self.reaped_nodes = 0

    # -- wiring and life ---------------------------------------------------------------------------

    def bind(self, server: Server) -> None:
        self.server = server
        self.local_bp = LocalBackplane(server)
        server.extra_metrics = self.metrics

    def metrics(self) -> list[tuple[str, str, str, float]]:
        """This node's part of /metrics."""
        link = self.link
        remote = [u for u in self.users.values() if type(u.conn) is RemoteConnection]
        nodes = 1 + len({u.conn.node for u in remote})  # type: ignore[attr-defined]
        return [
            ("backplane_up", "gauge", "1 while this node is connected to Redis, else 0.", float(link.up)),
            ("backplane_published_total", "counter", "Messages this node published to Redis.", link.published),
            ("backplane_received_total", "counter", "Messages this node received from Redis.", link.received),
            ("backplane_publish_seconds_total", "counter",
             "Seconds from sending a pipeline of commands to Redis to its replies, summed.", link.publish_seconds),
            ("backplane_pipelines_total", "counter", "Pipelines of commands sent to Redis.", link.pipelines),
            ("backplane_reconnects_total", "counter", "Times this node reconnected to Redis.", link.reconnects),
            ("cluster_resyncs_total", "counter", "Times this node reloaded the network's state.", self.resyncs),
            ("cluster_reaped_nodes_total", "counter", "Nodes this node saw taken for dead.", self.reaped_nodes),
            ("cluster_nodes", "gauge", "Nodes with users in the network, this one included.", nodes),
            ("cluster_users", "gauge", "Users in the network, on every node.",
             sum(1 for u in self.users.values() if u.registered)),
        ]

    def uid(self, client: Client) -> str:
        conn = client.conn
        if type(conn) is RemoteConnection:
            return conn.uid
        return f"{self.name}:{client.id}"

    def is_local(self, client: Client) -> bool:
        return type(client.conn) is not RemoteConnection

    async def start(self) -> None:
        """Connect, take the network's state, remove what an earlier life of this node left, announce
        this node. Raises OSError/RedisError when Redis cannot be reached."""
        await self.link.connect()
        # What comes before the first snapshot waits for it (this node knows no state yet: not a gap).
        self._loading = True
        await self._call_async(lambda done: self.link.subscribe([STATE, inbox(self.name)], done))
        # An earlier life of this node (a crash, then a restart before the others reaped it): its users
        # are gone.
        await self._call_async(lambda done: self._reap(self.name, f"{self.name} restarted", check=False, done=done))
        await self._load_snapshot()
        for name, name_cf, created in self._autojoin:
            self._ensure_permanent(name, name_cf, created)
        self.started = True
        log.info("cluster: node %s joined the network at state %d (%d users, %d channels)",
                 self.name, self.seq, len(self.users), len(self.chans))

    async def go_live(self) -> None:
        """Tell the network this node is alive, and from now on keep saying so (the runtime calls this
        once the store is open: opening it may hold the loop longer than the timeout)."""
        accounts = self.server.accounts if self.server is not None else None
        if accounts is not None:
            accounts.on_change = self._account_changed
            accounts.markers.on_advance = self._marker_moved
        history = self.server.history if self.server is not None else None
        if history is not None:
            history.on_commit = self._journal_batch
            self._processed_base = history.written + history.failed_writes
            orphans, self._orphans = self._orphans, []
            if orphans:
                self._recover_history(self.name, [_batch_json(orphans).encode()])
        # Alive first, then known: a reaper must never see this node in ``nodes`` without its liveness key.
        self._refresh_liveness()
        await self._call_async(lambda done: self.link.command(("SADD", K_NODES, self.name), done))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._liveness_loop()), loop.create_task(self._reaper_loop())]

    async def close(self) -> None:
        self.closing = True
        for task in self._tasks:
            task.cancel()
        if self.link.up:
            # A clean stop: the others see our users go now, not after the timeout.
            done = asyncio.get_running_loop().create_future()
            self._reap(self.name, f"{self.name} shut down", check=False, keep_history=True,
                       done=lambda r: None if done.done() else done.set_result(r))
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(done, 2)
            self.link.command(("DEL", P + "node:" + self.name))
            await asyncio.sleep(0.05)
        await self.link.close()

    async def _call_async(self, start: Callable[[Callable[[Any], None]], None]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        start(done)
        result = await asyncio.wait_for(future, 10)
        if isinstance(result, BaseException):
            raise result
        return result

    def _refresh_liveness(self) -> None:
        self.link.command(("SET", P + "node:" + self.name, self.boot_id, "PX", int(self.timeout_s * 1000)))

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timeout_s / 3)
            if self.link.up:
                self._refresh_liveness()
                self.link.command(("SADD", K_NODES, self.name))
                self._trim_journal()

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.timeout_s / 5))
            if self.link.up and not self._loading:
                self.link.script("dead", [K_NODES], [P], self._reap_dead)
            if self._limbo:
                self._end_limbo()

    def _end_limbo(self) -> None:
        """Nodes whose users Redis lost and that did not re-assert them within the timeout: gone."""
        now = time.monotonic()
        for node, deadline in list(self._limbo.items()):
            if now < deadline:
                continue
            del self._limbo[node]
            gone = [u for u in self.users.values() if type(u.conn) is RemoteConnection and u.conn.node == node]
            log.info("cluster: node %s did not come back; its %d users are gone", node, len(gone))
            for user in gone:
                self._quit_lines(user, f"{node} went away")
            for user in gone:
                self._forget_user(user)
            for name_cf, channel in list(self.chans.items()):
                if not channel.members and not channel.permanent:
                    self._drop_channel(name_cf)

    def _reap_dead(self, answer: Any) -> None:
        if isinstance(answer, BaseException) or not answer:
            return
        for raw in answer:
            node = raw.decode()
            if node != self.name:
                self._reap(node, f"{node} went away", check=True, done=None)

    def _reap(self, node: str, reason: str, *, check: bool, done: Callable[[Any], object] | None,
              keep_history: bool = False) -> None:
        """Remove ``node`` from the network; store what history it left unstored (unless ``keep_history``:
        our own, at a clean stop, which our store stores itself)."""
        event = dumps(["R", node, reason])

        def reaped(answer: Any) -> None:
            if isinstance(answer, list) and len(answer) > 1 and not keep_history:
                self._recover_history(node, answer[1:])
            if done is not None:
                done(answer)

        self.link.script("reap", [K_SEQ, K_USERS, K_NICKS, K_CHANS, K_CV, K_NODES],
                         [node, P, STATE, event, "{}", "check" if check else "all"], reaped)

    # -- history's copy in Redis --------------------------------------------------------------------

    def _journal_batch(self, batch: list[HistoryMessage]) -> None:
        """A pass's messages, as history journals them here: a copy goes to Redis before anything this
        pass published, and stays there until our store has them (see ``_trim_journal``)."""
        self._committed += len(batch)
        if not self.link.up:
            return
        self.link.first(("RPUSH", P + "j:" + self.name, _batch_json(batch)))
        self._journal_marks.append(self._committed)

    def _restart_journal(self) -> None:
        """After an outage: the copy in Redis starts again from what waits to be stored."""
        history = self.server.history if self.server is not None else None
        self.link.first(("DEL", P + "j:" + self.name))
        if history is not None and history.unstored:
            self.link.first(("RPUSH", P + "j:" + self.name, _batch_json(history.unstored)))
            self._journal_marks.append(self._committed)

    def _trim_journal(self) -> None:
        """Drop from Redis the copies of batches our store has stored (it stores in the order recorded)."""
        history = self.server.history if self.server is not None else None
        if history is None or not self._journal_marks:
            return
        processed = history.written + history.failed_writes - self._processed_base
        done = 0
        marks = self._journal_marks
        while marks and marks[0] <= processed:
            marks.popleft()
            done += 1
        if done and self.link.up:
            self.link.command(("LTRIM", P + "j:" + self.name, done, -1))

    def _recover_history(self, node: str, raw_batches: list[bytes]) -> None:
        """What a dead node (or this node's earlier life) recorded and may not have stored: into the
        database, but what it has already."""
        messages = [HistoryMessage(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7] or NO_TAGS,
                                   tuple(m[8]) if m[8] else None)
                    for raw in raw_batches for m in loads(_text(raw))]
        if not messages:
            return
        history = self.server.history if self.server is not None else None
        if history is None:
            self._orphans.extend(messages)  # until the store is open (go_live)
            return

        def store(storage: Storage) -> int:
            missing = [m for m in messages if storage.get_message(m.msgid) is None]
            if missing:
                storage.append_messages(missing)
            return len(missing)

        def stored(outcome: Outcome[int]) -> None:
            if outcome.error is not None:
                log.error("cluster: could not store the history %s left: %s", node, outcome.error)
            else:
                log.info("cluster: stored %d messages of %s's history that it had not stored (of %d)",
                         outcome.value, node, len(messages))

        history.write(store, stored)

    # -- the link's news ---------------------------------------------------------------------------

    def _on_down(self, why: str) -> None:
        """Redis is gone: what waits for its answer is answered now, and what waited to be delivered here
        is delivered (alone: nothing goes to other nodes until Redis is back)."""
        for pending in list(self.pending.values()):
            pending.finish(False)
        self.pending.clear()
        waiters, self.waiters = self.waiters, []
        for _, retry in waiters:
            retry()  # decides again: the link is down, so it answers "try again"
        self._deliver_stash(None)
        self._journal_marks.clear()  # Redis may come back without them: _recover starts the copy again
        self._loading = False
        self._buffered.clear()
        self.subscribed.clear()
        self.asserted = False  # Redis may come back without this node's state

    def _on_up(self) -> None:
        # Subscribed before anything else goes out: a message this node publishes from now on must come
        # back to it (its own members get it then), and other nodes' must reach it.
        self.link.subscribe([STATE, inbox(self.name)])
        for name_cf in self.local_members:
            self._subscribe(name_cf)
        asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Back on Redis: subscribe, assert what this node holds, reload the rest."""
        try:
            await self._call_async(lambda done: self.link.subscribe([STATE, inbox(self.name)], done))
            for name_cf in self.local_members:
                self._subscribe(name_cf)
            self._restart_journal()
            self._refresh_liveness()  # before the assert puts this node in ``nodes`` again
            await self._assert_state()
            self.asserted = True
            await self._load_snapshot()
            log.info("cluster: back in step with the network at state %d", self.seq)
        except (LinkDown, OSError) as exc:
            log.warning("cluster: resynchronising failed (%s); trying again when Redis is back", exc)
        except (TimeoutError, RedisError) as exc:
            # Redis is there but refused (full, read-only after a failover) or was slow: again in a moment.
            log.warning("cluster: resynchronising failed (%s); trying again in %.0f s", exc or type(exc).__name__,
                        RECOVER_RETRY_S)
            asyncio.get_running_loop().call_later(RECOVER_RETRY_S, self._recover_again)

    def _recover_again(self) -> None:
        if self.link.up and not self.asserted and not self.closing:
            asyncio.get_running_loop().create_task(self._recover())

    async def _assert_state(self) -> None:
        users: dict[str, list[str]] = {}
        chans: dict[str, list[Any]] = {}
        for uid, user in self.users.items():
            if self.is_local(user) and user.nick_cf and not user.quitting:
                users[uid] = [user.nick_cf, dumps(user_fields(user))]
        for name_cf, members in self.local_members.items():
            channel = self.chans.get(name_cf)
            if channel is None or not members:
                continue
            fields = [x for kv in channel_fields(channel).items() for x in kv]
            chans[name_cf] = [fields, {self.uid(m): status for m, status in members.items()}]
        answer = await self._call_async(lambda done: self.link.script(
            "assert", [K_SEQ, K_USERS, K_NICKS, K_CHANS, K_CV, K_NODES],
            [self.name, P, STATE, dumps(["Z", self.name]), "{}", dumps({"users": users, "chans": chans})], done))
        for raw in answer[1:]:
            loser = self.users.get(raw.decode())
            if loser is not None and self.server is not None:
                log.warning("cluster: %s lost its nick to another node while Redis was away", loser.nick)
                self.server.end_user(loser, "Nick collision after a network split")

    # -- snapshots ---------------------------------------------------------------------------------

    async def _load_snapshot(self) -> None:
        """Replace the replica's view of others with Redis's, at one point of the order; tell this node's
        clients what changed meanwhile (QUIT, JOIN, PART). State changes that come meanwhile wait in
        ``_buffered`` and are applied after, those the snapshot does not cover already."""
        async with self._load_lock:  # one at a time: a later one starts from what the earlier one left
            self._loading = True
            try:
                answer = await self._call_async(lambda done: self.link.script(
                    "snapshot", [K_SEQ, K_USERS, K_NICKS, K_CHANS, K_CV], [P], done))
            except BaseException:
                self._loading = False
                self._buffered = []
                raise
            try:
                self._after_snapshot(answer)
            except Exception:
                # Never left loading for ever (every later change buffered, none applied).
                log.exception("cluster: internal error applying the network's state")
                self._loading = False

    def _after_snapshot(self, answer: list[Any]) -> None:
        self.resyncs += 1
        self._apply_snapshot(answer)
        # Our changes the snapshot covered are settled on the snapshot's state, before later events apply.
        self._settle_pending(retry_waiters=False)
        self.snapshot_members = {}
        self._loading = False
        buffered, self._buffered = self._buffered, []
        for seq, event in sorted(buffered, key=lambda b: b[0]):
            if self._loading:  # an event below asked for another reload: the rest waits for it
                self._buffered.append((seq, event))
            elif seq == self.seq + 1:
                self._state_event(seq, event)
            elif seq > self.seq + 1:
                log.warning("cluster: missed state changes %d..%d; reloading", self.seq + 1, seq - 1)
                self._buffered.append((seq, event))
                self._resync()
        self._settle_pending()

    def _apply_snapshot(self, answer: list[Any]) -> None:
        seq = int(answer[0])
        users = {}
        for uid, raw in _flat(answer[1]).items():
            try:
                fields = loads(raw)
                if isinstance(fields, dict) and ":" in uid:
                    users[uid] = fields
                    continue
            except ValueError:
                pass
            log.warning("cluster: ignoring a user Redis holds that is not one (%r: %.80r)", uid, raw)
        nicks = _flat(answer[2])
        cv = {name: int(v) for name, v in _flat(answer[3]).items()}
        alive = {raw.decode() for raw in answer[5]}
        now = time.monotonic()
        for node in alive:
            self._limbo.pop(node, None)

        def missing(user: Client) -> bool:
            """A remote user Redis does not have: gone, if its node is there to say so. A node that is not
            (Redis came back empty, and that node has not re-asserted its users yet) has until the
            timeout to come back: its users stay meanwhile, rather than quit and join again."""
            node = user.conn.node  # type: ignore[attr-defined]
            if node in alive:
                return True
            self._limbo.setdefault(node, now + self.timeout_s)
            return False

        # Users: the others' as Redis has them; this node's own are this node's to say.
        gone = [u for uid, u in self.users.items() if not self.is_local(u) and uid not in users and missing(u)]
        before = {name_cf: {m: s for m, s in ch.members.items()} for name_cf, ch in self.chans.items()}
        for user in gone:
            self._quit_lines(user, "Network resynchronised")
        for user in gone:
            self._forget_user(user)
        for uid, fields in list(users.items()):
            if uid.startswith(self.name + ":"):
                continue
            try:
                if not isinstance(fields.get("nick"), str):
                    raise TypeError("no nick")
                known = self.users.get(uid)
                if known is None:
                    self._new_remote(uid, fields)
                else:
                    apply_user_fields(known, fields)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("cluster: ignoring a user Redis holds that is not one (%r: %s)", uid, exc)
                del users[uid]
        self.nicks = {u.nick_cf: u for uid, u in self.users.items() if u.nick_cf and uid not in users}
        for nick_cf, uid in nicks.items():
            holder = self.users.get(uid)
            if holder is not None:
                if not self.is_local(holder):
                    holder.nick_cf = nick_cf
                    holder.nick = users[uid]["nick"] if uid in users else holder.nick
                self.nicks[nick_cf] = holder
        # Channels.
        seen: set[str] = set()
        for entry in answer[4]:
            name_cf = _text(entry[0])
            seen.add(name_cf)
            fields = _flat(entry[1])
            channel = self.chans.get(name_cf)
            if channel is None:
                channel = self.chans[name_cf] = Channel(fields.get("name", name_cf), name_cf,
                                                         int(fields.get("created", "0")))
            try:
                _apply_fields(channel, fields)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("cluster: ignoring what Redis holds of %s that is not valid: %s", name_cf, exc)
            members = _flat(entry[2])
            ours = {uid: status for uid, status in members.items() if uid.startswith(self.name + ":")}
            if ours:
                self.snapshot_members[name_cf] = ours
            for member in list(channel.members):
                if self.is_local(member):
                    # Ours, that Redis no longer has: kicked by another node (an event the snapshot covered).
                    # Not while Redis may have lost our state and we have not asserted it again.
                    if self.asserted and self.uid(member) not in members:
                        self._drop_member(channel, member)
                elif self.uid(member) not in members and member.conn.node in alive:  # type: ignore[attr-defined]
                    self._drop_member(channel, member)
            for uid, status in members.items():
                listed = self.users.get(uid)
                if listed is not None and (not self.is_local(listed) or listed in channel.members):
                    # Ours: only the status (a MODE the snapshot covered); joins and parts are ours to make.
                    self._add_member(channel, listed, status)
            self.invites[name_cf] = {uid: v == "1" for uid, v in _flat(entry[3]).items()}
            self._index_invites(channel)
            self.chan_seq[name_cf] = cv.get(name_cf, 0)
        for name_cf in list(self.chans):
            if name_cf not in seen:
                channel = self.chans[name_cf]
                for member in list(channel.members):
                    if (self.asserted if self.is_local(member)
                            else member.conn.node in alive):  # type: ignore[attr-defined]
                        self._drop_member(channel, member)
                if not channel.members and not channel.permanent:
                    self._drop_channel(name_cf)
                else:
                    self.chan_seq[name_cf] = 0
        self.seq = seq
        self._membership_lines(before)

    def _membership_lines(self, before: dict[str, dict[Client, str]]) -> None:
        """JOIN and PART lines for this node's members, of the remote members that came or went in a resync."""
        server = self.server
        if server is None:
            return
        for name_cf, members in self.local_members.items():
            channel = self.chans.get(name_cf)
            if channel is None or not members:
                continue
            old = before.get(name_cf, {})
            audience = list(members)
            for member in channel.members:
                if member not in old and not self.is_local(member):
                    server.from_user(member, "JOIN", [channel.name]).deliver(audience)
            for member in old:
                if member not in channel.members and not self.is_local(member) and not member.quitting:
                    server.from_user(member, "PART", [channel.name, "Network resynchronised"]).deliver(audience)

    def _settle_pending(self, *, retry_waiters: bool = True) -> None:
        """Our changes whose events the snapshot covered: they happened."""
        for op_id, pending in list(self.pending.items()):
            if pending.seq and pending.seq <= self.seq:
                del self.pending[op_id]
                pending.finish(True)
        if not retry_waiters:
            return
        waiters, self.waiters = self.waiters, []
        for seq, retry in waiters:
            if seq <= self.seq:
                retry()
            else:
                self.waiters.append((seq, retry))

    # -- the replica's parts ------------------------------------------------------------------------

    def _new_remote(self, uid: str, fields: dict[str, Any]) -> Client:
        server = self.server
        assert server is not None
        node = uid.partition(":")[0]
        conn = RemoteConnection(node, fields.get("ip", "0.0.0.0"), uid)
        user = Client(conn, next(self._remote_ids), server.clock(), fields.get("signon", 0.0))
        user.nick = fields.get("nick", "*")
        user.nick_cf = casefold(user.nick) if user.nick != "*" else ""
        apply_user_fields(user, fields)
        self.users[uid] = user
        self.remote_ids[user.id] = user
        return user

    def _forget_user(self, user: Client) -> None:
        for channel in list(user.channels.values()):
            self._drop_member(channel, user)
        uid = self.uid(user)
        if self.users.get(uid) is user:
            del self.users[uid]
        if user.nick_cf and self.nicks.get(user.nick_cf) is user:
            del self.nicks[user.nick_cf]
        self.remote_ids.pop(user.id, None)
        user.quitting = True

    def _add_member(self, channel: Channel, member: Client, status: str) -> None:
        if member in channel.members:
            if channel.members[member] != status:
                channel.set_status(member, status)
                if self.is_local(member):
                    self.local_members.setdefault(channel.name_cf, {})[member] = status
            return
        channel.add(member, status)
        if member.channels is NO_CHANNELS:
            member.channels = {}
        member.channels[channel.name_cf] = channel
        if self.is_local(member):
            self.local_members.setdefault(channel.name_cf, {})[member] = status

    def _drop_member(self, channel: Channel, member: Client) -> None:
        channel.discard(member)
        if member.channels.get(channel.name_cf) is channel:
            del member.channels[channel.name_cf]
            if not member.channels:
                member.channels = NO_CHANNELS
        local = self.local_members.get(channel.name_cf)
        if local is not None and member in local:
            del local[member]
            if not local:
                del self.local_members[channel.name_cf]
                self._maybe_unsubscribe(channel.name_cf)

    def _drop_channel(self, name_cf: str) -> None:
        self.chans.pop(name_cf, None)
        self.chan_seq.pop(name_cf, None)
        self.invites.pop(name_cf, None)

    def _index_invites(self, channel: Channel) -> None:
        """The channel's invitations by this replica's client ids (as the handlers look them up)."""
        channel.invited = {}
        for uid, by_op in self.invites.get(channel.name_cf, {}).items():
            user = self.users.get(uid)
            if user is not None:
                channel.invited[user.id] = by_op

    def _subscribe(self, name_cf: str) -> None:
        if name_cf not in self.subscribed:
            self.subscribed.add(name_cf)
            self.link.subscribe([chan_key(name_cf)])

    def _maybe_unsubscribe(self, name_cf: str) -> None:
        if name_cf in self.subscribed and not self.local_members.get(name_cf) and not self.joining.get(name_cf):
            self.subscribed.discard(name_cf)
            self.link.unsubscribe([chan_key(name_cf)])

    def _quit_lines(self, user: Client, reason: str) -> None:
        """A remote user is gone without its node saying so (its node died, a resync): the QUIT its node
        would have sent, to this node's peers of it, and MONITOR's 731."""
        server = self.server
        bp = self.local_bp
        if server is None or bp is None or user.quitting:
            return
        out = server.from_user(user, "QUIT", [reason])
        bp_recipients = self._peers_here(user, departing=True)
        out.deliver(bp_recipients)
        if server.monitors and user.nick_cf:
            bp.to_watchers(user.nick, RPL_MONOFFLINE, user.nick)

    def _peers_here(self, user: Client, *, departing: bool = False, cap: str | None = None) -> list[Client]:
        """This node's clients sharing a channel with ``user`` (each of their connections)."""
        server = self.server
        assert server is not None
        threshold = server.config.large_channel_threshold
        seen: set[Client] = set()
        for channel in user.channels.values():
            local = self.local_members.get(channel.name_cf)
            if not local:
                continue
            if departing and len(channel.members) > threshold and user not in channel.privileged:
                seen.update(m for m in channel.operators() if m in local)
            else:
                seen.update(local)
            for member in channel.with_devices:
                if member in seen and member.devices:
                    seen.update(member.devices)
        seen.discard(user)
        if cap is not None:
            return [c for c in seen if cap in c.caps]
        return list(seen)

    # -- messages from Redis ------------------------------------------------------------------------

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if channel == b"salotto:s":
            seq_text, _, rest = data.partition(b" ")
            seq = int(seq_text)
            message = loads(_text(rest))
            if seq == 0:
                self._delivery(message)
                return
            if self._loading:
                self._buffered.append((seq, message))
                return
            if seq <= self.seq:
                return  # a snapshot had it already
            if seq != self.seq + 1:
                log.warning("cluster: missed state changes %d..%d; reloading", self.seq + 1, seq - 1)
                self._buffered.append((seq, message))
                self._resync()
                return
            self._state_event(seq, message)
            return
        self._delivery(loads(_text(data)))

    def _resync(self) -> None:
        """Reload the network's state (a gap in the state changes, a node gone or re-asserted)."""
        if self._loading:
            return
        self._loading = True  # buffer from now

        async def reload() -> None:
            try:
                await self._load_snapshot()
            except (TimeoutError, LinkDown, RedisError) as exc:
                log.warning("cluster: reloading the network's state failed (%s)", exc)

        asyncio.get_running_loop().create_task(reload())

    def _state_event(self, seq: int, event: list[Any]) -> None:
        kind = event[0]
        log.debug("cluster: state change %d: %s", seq, event)
        if kind in ("R", "Z"):
            self.seq = seq
            if kind == "R":
                self.reaped_nodes += 1
                node = event[1]
                if node == self.name and self.started and not self.closing:
                    log.warning("cluster: the network took this node for dead; asserting its state again")
                    self.asserted = False
                    asyncio.get_running_loop().create_task(self._recover())
                    return
                log.info("cluster: node %s is gone (%s)", node, event[2])
                gone = [u for u in self.users.values()
                        if type(u.conn) is RemoteConnection and u.conn.node == node]
                for user in gone:
                    self._quit_lines(user, event[2])
                for user in gone:
                    self._forget_user(user)
            self._resync()
            return
        self.seq = seq
        handler = _EVENTS.get(kind)
        if handler is not None:
            handler(self, seq, event)
        if self.waiters:
            ready = [w for w in self.waiters if w[0] <= seq]
            if ready:
                self.waiters = [w for w in self.waiters if w[0] > seq]
                for _, retry in ready:
                    retry()

    def _finish(self, op_id: str) -> None:
        pending = self.pending.pop(op_id, None)
        if pending is not None:
            pending.finish(True)

    def _ev_nick(self, seq: int, event: list[Any]) -> None:
        _, uid, nick, fields, old_cf, op_id = event
        nick_cf = casefold(nick)
        user = self.users.get(uid)
        if user is None:
            if uid.startswith(self.name + ":"):
                # A client of ours that left before its claim came back: give the nick up again.
                self.apply([], [["hdel_if", K_NICKS, nick_cf, uid], ["hdel", K_USERS, uid]], ["X", uid])
                self._finish(op_id)
                return
            user = self._new_remote(uid, fields)
        elif fields is not None and not self.is_local(user):
            apply_user_fields(user, fields)
        if old_cf and self.nicks.get(old_cf) is user:
            del self.nicks[old_cf]
        self.nicks[nick_cf] = user
        if not self.is_local(user):
            if old_cf and old_cf != nick_cf and user.registered and self.server is not None:
                self.server.remember_nick(user)
            user.nick, user.nick_cf = nick, nick_cf
        self._finish(op_id)

    def _ev_user(self, seq: int, event: list[Any]) -> None:
        user = self.users.get(event[1])
        if user is None:
            return
        if not self.is_local(user):
            apply_user_fields(user, event[2])
        elif event[3] != self.name:  # CHGHOST by an operator on another node
            user.user, user.host = event[2]["user"], event[2]["host"]

    def _ev_release(self, seq: int, event: list[Any]) -> None:
        user = self.users.get(event[1])
        if user is None or self.is_local(user):
            return
        if user.nick_cf and self.nicks.get(user.nick_cf) is user:
            del self.nicks[user.nick_cf]
        if self.server is not None and user.registered:
            self.server.remember_nick(user)
        if user.channels:
            user.quitting = True  # its parts follow; it goes with the last one
        else:
            self._forget_user(user)

    def _ev_join(self, seq: int, event: list[Any]) -> None:
        _, name_cf, uid, status, fields, op_id = event
        channel = self.chans.get(name_cf)
        if channel is None:
            if fields is None:
                self._finish(op_id)
                return
            channel = self.chans[name_cf] = Channel(fields["name"], name_cf, int(fields["created"]))
        if fields is not None:
            _apply_fields(channel, fields)
        self.chan_seq[name_cf] = seq
        user = self.users.get(uid)
        if user is not None:
            invites = self.invites.get(name_cf)
            if invites is not None and invites.pop(uid, None) is not None:
                channel.invited.pop(user.id, None)
            self._add_member(channel, user, status)
        elif uid.startswith(self.name + ":"):
            # A client of ours that left before its join came back: take it out again.
            ops: list[Any] = [["hdel", P + "m:" + name_cf, uid], ["touch", name_cf]]
            if not channel.permanent:
                ops.append(["drop_if_empty", name_cf, P])
            self.apply([], ops, ["P", name_cf, uid])
        self._finish(op_id)

    def _ev_part(self, seq: int, event: list[Any]) -> None:
        _, name_cf, uid = event
        channel = self.chans.get(name_cf)
        if channel is None:
            return
        self.chan_seq[name_cf] = seq
        user = self.users.get(uid)
        if user is not None:
            self._drop_member(channel, user)
            if user.quitting and not user.channels and not self.is_local(user):
                self._forget_user(user)
        if not channel.members and not channel.permanent:
            self._drop_channel(name_cf)

    def _ev_status(self, seq: int, event: list[Any]) -> None:
        _, name_cf, uid, status = event
        channel = self.chans.get(name_cf)
        user = self.users.get(uid)
        if channel is None:
            return
        self.chan_seq[name_cf] = seq
        if user is not None and user in channel.members:
            self._add_member(channel, user, status)

    def _ev_fields(self, seq: int, event: list[Any]) -> None:
        """T (topic), E (a permanent channel ensured), M (a MODE's result) and I (invitations)."""
        kind, name_cf, fields = event[0], event[1], event[2]
        channel = self.chans.get(name_cf)
        if channel is None:
            if kind != "E":
                return
            channel = self.chans[name_cf] = Channel(fields["name"], name_cf, int(fields["created"]))
        _apply_fields(channel, fields)
        self.chan_seq[name_cf] = seq
        if kind == "M":
            for uid, status in event[3].items():
                user = self.users.get(uid)
                if user is not None and user in channel.members:
                    self._add_member(channel, user, status)
            self._finish(event[4])
        elif kind == "I":
            invites = self.invites.setdefault(name_cf, {})
            for uid in event[4]:
                invites.pop(uid, None)
            invites.update(event[3])
            self._index_invites(channel)

    # -- deliveries ------------------------------------------------------------------------------

    def _delivery(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == "o":
            self._deliver_stash(message[1])
            return
        origin, token = message[1], message[2]
        if origin == self.name:
            self._deliver_stash(token)
            return
        handler = _DELIVERIES.get(kind)
        if handler is not None:
            handler(self, message)

    def _deliver_stash(self, upto: int | None) -> None:
        stash = self.stash
        while stash and (upto is None or stash[0][0] <= upto):
            _, deliver = stash.popleft()
            try:
                deliver()
            except Exception:
                log.exception("cluster: internal error delivering")

    def stash_local(self, deliver: Callable[[], object]) -> int:
        """Deliver to this node's clients when the publication carrying the token comes back (at once when
        Redis is away). The token goes into that publication."""
        if not self.link.up:
            deliver()
            return 0
        token = next(self._tokens)
        self.stash.append((token, deliver))
        return token

    def marker(self, token: int) -> None:
        """A stash entry whose delivery no publication carries: one marker per loop pass covers them."""
        self._marker_needed = token
        self.link.nudge()  # nothing else may be queued (a typing notice is not kept in history)

    def published(self, token: int) -> None:
        if token:
            self._last_token_sent = token

    def _before_send(self) -> None:
        server = self.server
        if server is not None:
            server.commit_pending()  # stored before any other node hears of it
        if self._marker_needed > self._last_token_sent:
            self._last_token_sent = self._marker_needed
            self.link.publish_last(inbox(self.name), dumps(["o", self._marker_needed]))

    def _dv_channel(self, message: list[Any]) -> None:
        _, _, _, name_cf, packed = message
        local = self.local_members.get(name_cf)
        if not local:
            return
        out = unpack_outgoing(packed)
        out.deliver(local)
        channel = self.chans.get(name_cf)
        if channel is not None and channel.with_devices:
            for user in channel.with_devices:
                if user.devices:
                    out.deliver(user.devices)

    def _dv_members(self, message: list[Any]) -> None:
        _, _, _, name_cf, cap, about_uid, operators_only, alt_cap, alt, packed = message
        channel = self.chans.get(name_cf)
        if channel is None or not self.local_members.get(name_cf):
            return
        about = self.users.get(about_uid) if about_uid else None
        members = self.members_here(channel, cap=cap, about=about, operators_only=operators_only)
        out = unpack_outgoing(packed)
        if alt is None:
            out.deliver(members)
            return
        alternative = unpack_outgoing(alt)
        for member in members:
            member.conn.write((alternative if alt_cap in member.caps else out).variant(member.tag_flags))

    def members_here(self, channel: Channel, *, cap: str | None, about: Client | None,
                     operators_only: bool) -> list[Client]:
        """This node's members of ``channel`` (and their devices) that a to_members call reaches."""
        server = self.server
        assert server is not None
        local = self.local_members.get(channel.name_cf) or {}
        if operators_only or (about is not None and len(channel.members) > server.config.large_channel_threshold
                              and about not in channel.privileged):
            # The operators (from the few with a prefix, not a walk over a crowd), those of this node.
            chosen = [m for m in channel.operators() if m in local]
        else:
            chosen = list(local)
        if channel.with_devices:
            chosen += [d for user in chosen if user.devices for d in user.devices]
        if cap is not None:
            chosen = [m for m in chosen if cap in m.caps]
        return chosen

    def _dv_nick(self, message: list[Any]) -> None:
        _, _, _, uid, cap, packed = message
        target = self.users.get(uid)
        if target is not None and self.is_local(target) and self.local_bp is not None:
            self.local_bp.to_nick(target, unpack_outgoing(packed), cap=cap)

    def _dv_peers(self, message: list[Any]) -> None:
        _, _, _, uid, cap, departing, packed = message
        user = self.users.get(uid)
        if user is None:
            return
        out = unpack_outgoing(packed)
        recipients = self._peers_here(user, departing=departing, cap=cap)
        if cap is not None:
            recipients += self._watchers_here(user, cap, recipients)
        out.deliver(recipients)

    def _watchers_here(self, user: Client, cap: str, already: Collection[Client]) -> list[Client]:
        server = self.server
        assert server is not None
        watchers = server.monitors.get(user.nick_cf)
        if not watchers:
            return []
        chosen = set(already)
        return [w for w in watchers if cap in w.caps and "extended-monitor" in w.caps and w not in chosen]

    def _dv_account(self, message: list[Any]) -> None:
        _, _, _, account_cf, cap, packed = message
        server = self.server
        assert server is not None
        clients = server.logins.get(account_cf)
        if clients:
            out = unpack_outgoing(packed)
            out.deliver([c for c in clients if cap is None or cap in c.caps])

    def _dv_watchers(self, message: list[Any]) -> None:
        _, _, _, nick, numeric, text = message
        if self.local_bp is not None:
            self.local_bp.to_watchers(nick, numeric, text)

    def _account_changed(self, kind: str, name: str) -> None:
        """This node changed an account or a registered channel in the store: the others read it again."""
        if self.link.up:
            self.link.publish(STATE, "0 " + dumps(["d", self.name, 0, kind, name]))

    def _marker_moved(self, account_cf: str, target_cf: str, time: float) -> None:
        if self.link.up:
            self.link.publish(STATE, "0 " + dumps(["r", self.name, 0, account_cf, target_cf, time]))

    def _dv_directory(self, message: list[Any]) -> None:
        accounts = self.server.accounts if self.server is not None else None
        if accounts is not None:
            accounts.refresh(message[3], message[4])

    def _dv_marker(self, message: list[Any]) -> None:
        accounts = self.server.accounts if self.server is not None else None
        if accounts is not None:
            accounts.markers.learn(message[3], message[4], message[5])

    def _dv_kill(self, message: list[Any]) -> None:
        _, _, _, uid, reason, error = message
        user = self.users.get(uid)
        if user is not None and self.is_local(user) and self.server is not None:
            self.server.end_user(user, reason, error=error)

    # -- asking Redis for a state change -----------------------------------------------------------

    def apply(self, checks: list[Any], ops: list[Any], event: list[Any],
              answer: Callable[[bool, int], None] | None = None) -> None:
        """Run one state change; ``answer(ok, seq)`` (not run when the link failed: see pending)."""

        def replied(result: Any) -> None:
            if answer is None:
                return
            if isinstance(result, BaseException):
                answer(False, -1)
                return
            answer(bool(result[0]), int(result[1]))

        self.link.script("apply", [K_SEQ, K_CV, K_NICKS], [dumps(checks), dumps(ops), STATE, dumps(event)], replied)

    def apply_op(self, checks: list[Any], ops: list[Any], event: Callable[[str], list[Any]],
                 finish: Callable[[bool], None], refused: Callable[[int], None]) -> None:
        """A state change whose answer is its event: ``finish(True)`` once this node applied it (or a snapshot
        covered it), ``finish(False)`` when the link failed first; ``refused(seq)`` when a check failed (seq:
        Redis's state then, to wait for) or the link was down (-1). ``event`` is made with the op's id."""
        op_id = f"{self.name}:{next(self._ops)}"
        pending = self.pending[op_id] = _Pending(finish)

        def answered(ok: bool, seq: int) -> None:
            if ok:
                pending.seq = seq
                if seq <= self.seq and not self._loading:
                    self._finish(op_id)
            elif self.pending.pop(op_id, None) is not None:
                refused(seq)

        self.apply(checks, ops, event(op_id), answered)

    def wait_for(self, seq: int, retry: Callable[[], None]) -> None:
        if seq <= self.seq and not self._loading:
            retry()
        else:
            self.waiters.append((seq, retry))

    def _ensure_permanent(self, name: str, name_cf: str, created: int) -> Channel:
        channel = self.chans.get(name_cf)
        if channel is None:
            channel = self.chans[name_cf] = Channel(name, name_cf, created, permanent=True)
        channel.permanent = True
        fields = {"name": channel.name, "created": str(channel.created), "permanent": "1"}
        ops: list[Any] = [["sadd", K_CHANS, name_cf]]
        full = channel_fields(channel)
        ops += [["hsetnx", P + "ch:" + name_cf, k, v] for k, v in full.items() if k not in fields]
        ops += [["hset", P + "ch:" + name_cf, k, v] for k, v in fields.items()]
        ops.append(["touch", name_cf])
        self.apply([], ops, ["E", name_cf, fields])
        return channel


def _ignore(result: Any) -> None:
    return


def _batch_json(batch: list[HistoryMessage]) -> str:
    return dumps([[m.msgid, m.target, m.time, m.sender, m.account, m.command, m.text,
                   dict(m.tags) if m.tags else None, list(m.parties) if m.parties else None] for m in batch])


_EVENTS: dict[str, Callable[[ClusterNode, int, list[Any]], None]] = {
    "N": ClusterNode._ev_nick, "U": ClusterNode._ev_user, "X": ClusterNode._ev_release, "J": ClusterNode._ev_join,
    "P": ClusterNode._ev_part, "S": ClusterNode._ev_status, "T": ClusterNode._ev_fields,
    "E": ClusterNode._ev_fields, "M": ClusterNode._ev_fields, "I": ClusterNode._ev_fields,
}
_DELIVERIES: dict[str, Callable[[ClusterNode, list[Any]], None]] = {
    "c": ClusterNode._dv_channel, "m": ClusterNode._dv_members, "n": ClusterNode._dv_nick,
    "p": ClusterNode._dv_peers, "a": ClusterNode._dv_account, "w": ClusterNode._dv_watchers,
    "k": ClusterNode._dv_kill, "d": ClusterNode._dv_directory, "r": ClusterNode._dv_marker,
}


class _OnNode:
    """A seam's cluster implementation: a view of its node."""

    __slots__ = ("_node",)

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def unavailable(self) -> str | None:
        """What cannot be decided while Redis is away answers 437 with this."""
        return None if self._node.link.up else UNAVAILABLE


class ClusterNickRegistry(_OnNode):
    """Nicks, network-wide: a claim is a script that checks and takes the nick in one step."""

    __slots__ = ()

    def holder(self, nick_cf: str) -> Client | None:
        return self._node.nicks.get(nick_cf)

    def others(self) -> list[Client]:
        return [user for user in self._node.users.values() if type(user.conn) is RemoteConnection]

    def others_counted(self) -> tuple[int, int, int, int]:
        # Counted at most once a second: every registration's welcome has LUSERS, and counting is a walk
        # over every user of the network.
        node = self._node
        now = time.monotonic()
        if now - node.counted_at >= LUSERS_CACHE_S:
            others = [u for u in self.others() if u.registered]
            node.counted = (len(others), sum(1 for u in others if "i" in u.modes),
                            sum(1 for u in others if "o" in u.modes),
                            len({u.conn.node for u in others}))  # type: ignore[attr-defined]
            node.counted_at = now
        return node.counted

    def claim(self, client: Client, nick_cf: str, done: Callable[[bool], None], *, nick: str = "") -> None:
        node = self._node
        holder = node.nicks.get(nick_cf)
        if holder is not None and holder is not client:
            done(False)
            return
        if not node.link.up:
            done(False)
            return
        uid = node.uid(client)
        node.users[uid] = client
        fields = user_fields(client)
        fields["nick"] = nick or (client.nick if nick_cf == client.nick_cf else nick_cf)
        old_cf = client.nick_cf if client.nick_cf != nick_cf else ""
        ops: list[Any] = [["hset", K_NICKS, nick_cf, uid], ["hset", K_USERS, uid, dumps(fields)]]
        if old_cf:
            ops.append(["hdel_if", K_NICKS, old_cf, uid])
        node.apply_op([["nick", nick_cf, uid]], ops, lambda op_id: ["N", uid, fields["nick"], fields, old_cf, op_id],
                      lambda ok: done(ok and node.nicks.get(nick_cf) is client), lambda seq: done(False))

    def release(self, client: Client) -> None:
        node = self._node
        nick_cf = client.nick_cf
        uid = node.uid(client)
        if nick_cf and node.nicks.get(nick_cf) is client:
            del node.nicks[nick_cf]
        if node.users.get(uid) is client:
            del node.users[uid]
        if client.primary is not None or not nick_cf:
            return  # a device holds no nick; a client without one has nothing in Redis (or undoes it: _ev_nick)
        node.apply([], [["hdel_if", K_NICKS, nick_cf, uid], ["hdel", K_USERS, uid]], ["X", uid])

    def updated(self, client: Client) -> None:
        """``client``'s public state changed (registration done, away, realname, host, account, modes)."""
        node = self._node
        if client.primary is not None or not client.nick_cf:
            return
        uid = node.uid(client)
        fields = user_fields(client)
        node.apply([], [["hset_x", K_USERS, uid, dumps(fields)]], ["U", uid, fields, node.name])

    def snapshot(self) -> dict[str, Client]:
        node = self._node
        return {nick: c for nick, c in node.nicks.items() if node.is_local(c)}


class ClusterChannelRegistry(_OnNode):
    """Channels, network-wide: joins and MODE are checked against the channel as this node sees it, and
    Redis refuses them when another node changed the channel meanwhile (then this node decides again)."""

    __slots__ = ()

    def get(self, name_cf: str) -> Channel | None:
        return self._node.chans.get(name_cf)

    def all(self) -> Iterable[Channel]:
        return self._node.chans.values()

    def count(self) -> int:
        return len(self._node.chans)

    def snapshot(self) -> dict[str, Channel]:
        return self._node.chans

    def ensure_permanent(self, name: str, name_cf: str, created: int) -> Channel:
        node = self._node
        if not node.started:
            node._autojoin.append((name, name_cf, created))
            channel = node.chans.get(name_cf)
            if channel is None:
                channel = node.chans[name_cf] = Channel(name, name_cf, created, permanent=True)
            return channel
        return node._ensure_permanent(name, name_cf, created)

    def join(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None]) -> None:
        node = self._node
        name_cf = request.name_cf
        if not node.link.up:
            done((ERR_UNAVAILRESOURCE, request.name, UNAVAILABLE))
            return
        node.joining[name_cf] = node.joining.get(name_cf, 0) + 1
        node._subscribe(name_cf)

        def finished(result: JoinResult) -> None:
            left = node.joining.get(name_cf, 1) - 1
            if left:
                node.joining[name_cf] = left
            else:
                node.joining.pop(name_cf, None)
                node._maybe_unsubscribe(name_cf)
            done(result)

        self._attempt(client, request, finished)

    def _attempt(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None],
                 precise: bool = False) -> None:
        node = self._node
        name_cf = request.name_cf
        if not node.link.up:
            done((ERR_UNAVAILRESOURCE, request.name, UNAVAILABLE))
            return
        channel = node.chans.get(name_cf)
        created = channel is None
        if channel is None:
            channel = request.create()
        elif client in channel.members:
            done(None)
            return
        version = node.chan_seq.get(name_cf, 0) if not created else 0
        refusal = None if request.bypass else entry_refusal(channel, client, request.key)

        def retry() -> None:
            self._attempt(client, request, done, precise=True)

        if refusal is not None:
            # Refused on what this node saw: make sure that is what Redis has (nothing changes).
            def checked(ok: bool, seq: int) -> None:
                if seq < 0:
                    done((ERR_UNAVAILRESOURCE, request.name, UNAVAILABLE))
                elif ok:
                    done(refusal)
                else:
                    node.wait_for(seq, retry)

            node.apply([["cv", name_cf, version]], [], ["-"], checked)
            return
        status = "o" if request.founder_op and not channel.members and not channel.permanent else ""
        uid = node.uid(client)
        fields = channel_fields(channel) if created else None
        ops: list[Any] = []
        if created:
            ops.append(["sadd", K_CHANS, name_cf])
            ops += [["hset", P + "ch:" + name_cf, k, v] for k, v in (fields or {}).items()]
        ops += [["hset", P + "m:" + name_cf, uid, status], ["hdel", P + "inv:" + name_cf, uid], ["touch", name_cf]]

        def finish(ok: bool) -> None:
            joined = node.chans.get(name_cf)
            if ok and joined is not None and client not in joined.members:
                covered = node.snapshot_members.get(name_cf, {}).get(uid)
                if covered is not None:  # a snapshot had the join, and its event was skipped
                    node._add_member(joined, client, covered)
            if ok and joined is not None and client in joined.members:
                done(joined)
            elif ok:
                done(None)
            else:
                done((ERR_UNAVAILRESOURCE, request.name, UNAVAILABLE))

        def refused(seq: int) -> None:
            if seq < 0:
                done((ERR_UNAVAILRESOURCE, request.name, UNAVAILABLE))
            else:
                node.wait_for(seq, retry)

        # What the decision rested on. With +l or +i (or a new channel): the channel unchanged since this node
        # saw it. Otherwise only its modes and lists: joins at once from everywhere do not refuse each other
        # (a crowd arriving in #lobby), and a MODE that changes them does. Once refused, the stricter check.
        check: list[Any]
        if created or precise or channel.limit is not None or "i" in channel.modes:
            check = ["cv", name_cf, version]
        else:
            now = channel_fields(channel)
            check = ["fields", P + "ch:" + name_cf, {k: now[k] for k in ("modes", "b", "e")}]
        node.apply_op([check], ops, lambda op_id: ["J", name_cf, uid, status, fields, op_id], finish, refused)

    def part(self, channel: Channel, client: Client) -> None:
        node = self._node
        name_cf = channel.name_cf
        uid = node.uid(client)
        node._drop_member(channel, client)
        if not node.link.up:
            if not channel.members and not channel.permanent:
                node._drop_channel(name_cf)
            return
        ops: list[Any] = [["hdel", P + "m:" + name_cf, uid], ["touch", name_cf]]
        if not channel.permanent:
            ops.append(["drop_if_empty", name_cf, P])
        node.apply([], ops, ["P", name_cf, uid])

    def set_status(self, channel: Channel, client: Client, status: str) -> None:
        node = self._node
        if client not in channel.members:
            return
        node._add_member(channel, client, status)
        uid = node.uid(client)
        node.apply([], [["hset_x", P + "m:" + channel.name_cf, uid, status], ["touch", channel.name_cf]],
                   ["S", channel.name_cf, uid, status])

    def set_topic(self, channel: Channel, topic: str, set_by: str, set_at: int) -> None:
        channel.topic, channel.topic_set_by, channel.topic_set_at = topic, set_by, set_at
        field = dumps([topic, set_by, set_at])
        self._node.apply([], [["hset", P + "ch:" + channel.name_cf, "topic", field], ["touch", channel.name_cf]],
                         ["T", channel.name_cf, {"topic": field}])

    def invite(self, channel: Channel, client_id: int, by_operator: bool, max_entries: int) -> None:
        node = self._node
        user = node.remote_ids.get(client_id) if client_id < 0 else None
        uid = node.uid(user) if user is not None else f"{node.name}:{client_id}"
        invites = node.invites.setdefault(channel.name_cf, {})
        dropped: list[str] = []
        if uid not in invites and len(invites) >= max_entries:
            dropped.append(next(iter(invites)))
        for old in dropped:
            invites.pop(old, None)
        invites[uid] = by_operator
        node._index_invites(channel)
        key = P + "inv:" + channel.name_cf
        ops: list[Any] = [["hdel", key, old] for old in dropped]
        ops += [["hset", key, uid, "1" if by_operator else "0"], ["touch", channel.name_cf]]
        node.apply([], ops, ["I", channel.name_cf, {}, {uid: by_operator}, dropped])

    def change_modes(
        self,
        channel: Channel,
        client: Client,
        changes: list[ModeChange],
        context: ModeContext,
        done: Callable[[list[ModeOutcome]], None],
    ) -> None:
        node = self._node
        name_cf = channel.name_cf
        if not node.link.up:
            done([ModeOutcome(changes[0], error=(ERR_UNAVAILRESOURCE, channel.name, UNAVAILABLE))] if changes else [])
            return
        current = node.chans.get(name_cf)
        if current is None:
            current = channel
        scratch = _copy(current)
        outcomes = apply_modes(scratch, client, changes, context)
        if not any(o.applied is not None for o in outcomes):
            done(outcomes)
            return
        fields = {k: v for k, v in channel_fields(scratch).items() if k in ("modes", "b", "e", "I")}
        statuses = {node.uid(m): s for m, s in scratch.members.items() if current.members.get(m) != s}
        version = node.chan_seq.get(name_cf, 0)
        ops: list[Any] = [["hset", P + "ch:" + name_cf, k, v] for k, v in fields.items()]
        ops += [["hset_x", P + "m:" + name_cf, uid, s] for uid, s in statuses.items()]
        ops.append(["touch", name_cf])

        def retry() -> None:
            self.change_modes(channel, client, changes, context, done)

        def finish(ok: bool) -> None:
            if ok:
                done(outcomes)
            else:
                done([ModeOutcome(changes[0], error=(ERR_UNAVAILRESOURCE, channel.name, UNAVAILABLE))])

        def refused(seq: int) -> None:
            if seq < 0:
                finish(False)
            else:
                node.wait_for(seq, retry)

        node.apply_op([["cv", name_cf, version]], ops, lambda op_id: ["M", name_cf, fields, statuses, op_id],
                      finish, refused)


def _copy(channel: Channel) -> Channel:
    """A scratch copy of a channel that a MODE's changes can be tried on."""
    copy = Channel(channel.name, channel.name_cf, channel.created, permanent=channel.permanent)
    copy.members = dict(channel.members)
    copy.privileged = set(channel.privileged)
    copy.modes = set(channel.modes)
    copy.key, copy.limit = channel.key, channel.limit
    copy.bans, copy.excepts, copy.invex = list(channel.bans), list(channel.excepts), list(channel.invex)
    copy.topic, copy.topic_set_by, copy.topic_set_at = channel.topic, channel.topic_set_by, channel.topic_set_at
    return copy


class ClusterBackplane(_OnNode):
    """Deliveries, network-wide: published once per message, delivered by each node to its own clients
    when the publication reaches it (this node included: see the module's docstring)."""

    __slots__ = ()

    def _local(self) -> LocalBackplane:
        bp = self._node.local_bp
        assert bp is not None
        return bp

    def to_channel(self, channel: Channel, out: Outgoing, exclude: Client | None = None) -> int:
        node = self._node
        name_cf = channel.name_cf
        local = node.local_members.get(name_cf)
        token = 0
        if local:
            audience = [m for m in local if m is not exclude]
            if channel.with_devices:
                audience += [d for u in channel.with_devices if u in local and u.devices for d in u.devices
                             if d is not exclude]
            token = node.stash_local(lambda: out.deliver(audience))
        if node.link.up:
            node.link.publish(chan_key(name_cf), dumps(["c", node.name, token, name_cf, pack_outgoing(out)]))
            node.published(token)
        return len(channel.members) - (exclude is not None and exclude in channel.members)

    def to_members(
        self,
        channel: Channel,
        out: Outgoing,
        *,
        exclude: Client | None = None,
        cap: str | None = None,
        about: Client | None = None,
        operators_only: bool = False,
        alternative: tuple[str, Outgoing] | None = None,
    ) -> int:
        node = self._node
        audience = [m for m in node.members_here(channel, cap=cap, about=about, operators_only=operators_only)
                    if m is not exclude]
        token = 0
        if audience:
            def deliver() -> None:
                if alternative is None:
                    out.deliver(audience)
                    return
                alt_cap, alt = alternative
                for member in audience:
                    member.conn.write((alt if alt_cap in member.caps else out).variant(member.tag_flags))

            token = node.stash_local(deliver)
        if node.link.up:
            alt_cap, alt_packed = (alternative[0], pack_outgoing(alternative[1])) if alternative else (None, None)
            node.link.publish(chan_key(channel.name_cf), dumps([
                "m", node.name, token, channel.name_cf, cap, node.uid(about) if about is not None else None,
                operators_only, alt_cap, alt_packed, pack_outgoing(out)]))
            node.published(token)
        return len(audience)

    def to_nick(self, target: Client, out: Outgoing, *, cap: str | None = None) -> int:
        node = self._node
        conn = target.conn
        if type(conn) is RemoteConnection:
            if node.link.up:
                node.link.publish(inbox(conn.node), dumps(["n", node.name, 0, conn.uid, cap, pack_outgoing(out)]))
            return 1
        local = self._local()
        node.marker(node.stash_local(lambda: local.to_nick(target, out, cap=cap)))
        return 1

    def to_peers(
        self,
        client: Client,
        out: Outgoing,
        *,
        cap: str | None = None,
        include_self: bool = False,
        departing: bool = False,
        exclude: Client | None = None,
    ) -> int:
        node = self._node
        recipients = node._peers_here(client, departing=departing, cap=cap)
        if cap is not None:
            recipients += node._watchers_here(client, cap, recipients)
        if node.is_local(client) and (include_self or exclude is not None):
            own = client.sessions()
            recipients += [s for s in own if s not in recipients and (cap is None or cap in s.caps)]
        if exclude is not None:
            recipients = [r for r in recipients if r is not exclude]
        token = node.stash_local(lambda: out.deliver(recipients)) if recipients else 0
        if node.link.up:
            node.link.publish(STATE, "0 " + dumps(["p", node.name, token, node.uid(client), cap, departing,
                                                         pack_outgoing(out)]))
            node.published(token)
        return len(recipients)

    def to_sessions(self, user: Client, out: Outgoing, *, exclude: Client | None = None,
                    cap: str | None = None) -> int:
        node = self._node
        sessions = [s for s in user.sessions() if s is not exclude and (cap is None or cap in s.caps)]
        if sessions:
            node.marker(node.stash_local(lambda: out.deliver(sessions)))
        return len(sessions)

    def to_account(self, account: str, out: Outgoing, *, cap: str | None = None, exclude: Client | None = None) -> int:
        node = self._node
        server = node.server
        assert server is not None
        account_cf = casefold(account)
        clients = [c for c in server.logins.get(account_cf, ()) if c is not exclude and (cap is None or cap in c.caps)]
        token = node.stash_local(lambda: out.deliver(clients)) if clients else 0
        if node.link.up:
            node.link.publish(STATE, "0 " + dumps(["a", node.name, token, account_cf, cap, pack_outgoing(out)]))
            node.published(token)
        return len(clients)

    def to_watchers(self, nick: str, numeric: str, text: str) -> None:
        node = self._node
        local = self._local()
        token = node.stash_local(lambda: local.to_watchers(nick, numeric, text))
        if node.link.up:
            node.link.publish(STATE, "0 " + dumps(["w", node.name, token, nick, numeric, text]))
            node.published(token)

    def kill(self, target: Client, reason: str, error: str | None) -> bool:
        """KILL of a user on another node: its node ends it. False when ``target`` is this node's."""
        node = self._node
        conn = target.conn
        if type(conn) is not RemoteConnection:
            return False
        if node.link.up:
            node.link.publish(inbox(conn.node), dumps(["k", node.name, 0, conn.uid, reason, error]))
        return True

