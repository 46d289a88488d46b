"""A node's two connections to Redis: one for commands (scripts, PUBLISH), one subscribed.

Everything a node sends goes through one queue, in the order it was asked: a pipeline at a time, the next
one sent only once the last one's replies are in. So Redis executes one node's commands in the order the
node made them, whatever connection of the pool carries them. A SUBSCRIBE waits for its confirmation
before anything queued after it is sent: a node that is about to have its first member in a channel
hears every message published after that member's join.

The subscribed connection reads in Redis's order: PUBLISH delivers to one subscriber in the order the
PUBLISHes ran, across channels, so a node sees a channel's state change (on the state channel) and the
channel's messages (on the channel's own) in the order they happened.

When either connection fails, the link says so (``on_down``), fails what was queued, and reconnects with
a growing delay (``on_up`` then); the node decides what that means (see salotto.cluster.node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

__all__ = ["LinkDown", "RedisLink"]

log = logging.getLogger("salotto.cluster")

# Reconnect delays: from the first to the longest, doubling.
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 2.0
# How long one command or a connection attempt may take before the link counts as broken.
COMMAND_TIMEOUT_S = 5.0
# The subscribed connection is PINGed this often; no PONG for KEEPALIVE_MISSES times that: broken (a
# connection that died without a FIN or RST would otherwise look like a quiet network for ever).
KEEPALIVE_S = 1.0
KEEPALIVE_MISSES = 3
# How much the subscribed connection reads at once.
READ_SIZE = 1 << 16
# Pipelines: at most this many commands in one (a burst is sent as several).
PIPELINE_MAX = 1000


class LinkDown(Exception):
    """Redis is not reachable now: what was asked was not done (or not known to be)."""


class _Op:
    __slots__ = ("args", "done", "kind")

    def __init__(self, kind: int, args: tuple[Any, ...], done: Callable[[Any], None] | None) -> None:
        self.kind = kind
        self.args = args
        self.done = done


_PUBLISH, _SCRIPT, _SUBSCRIBE, _UNSUBSCRIBE, _COMMAND = range(5)


class RedisLink:
    """The queue of commands to Redis and the subscription; reconnects by itself."""

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[bytes, bytes], None],
        on_up: Callable[[], None],
        on_down: Callable[[str], None],
        before_send: Callable[[], None],
    ) -> None:
        self.url = url
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        self._before_send = before_send
        self._queue: deque[_Op] = deque()
        # Commands that go before anything else not sent yet, in their own order (history's copies).
        self._first: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._nudged = False
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._subscribed: set[bytes] = set()
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._lua: dict[str, str] = {}
        self._scripts: dict[str, str] = {}  # name -> SHA1 of the loaded script
        self._tasks: list[asyncio.Task[None]] = []
        self.up = False
        self._closing = False
        self._last_pong = 0.0
        # Metrics.
        self.published = 0
        self.received = 0
        self.reconnects = 0
        self.publish_seconds = 0.0  # summed over pipelines: send to reply
        self.pipelines = 0

    # -- the caller's side ------------------------------------------------------------------------

    def publish(self, channel: str, payload: str) -> None:
        self._push(_Op(_PUBLISH, (channel, payload), None))

    def script(self, name: str, keys: list[str], args: list[Any], done: Callable[[Any], None]) -> None:
        """Run the registered script ``name``; ``done`` gets its reply or a :class:`LinkDown`."""
        self._push(_Op(_SCRIPT, (name, keys, args), done))

    def command(self, args: tuple[Any, ...], done: Callable[[Any], None] | None = None) -> None:
        self._push(_Op(_COMMAND, args, done))

    def subscribe(self, channels: Iterable[str], done: Callable[[Any], None] | None = None) -> None:
        """Subscribe; what is queued after this goes once Redis confirmed it."""
        self._push(_Op(_SUBSCRIBE, tuple(channels), done))

    def unsubscribe(self, channels: Iterable[str]) -> None:
        self._push(_Op(_UNSUBSCRIBE, tuple(channels), None))

    def first(self, args: tuple[Any, ...]) -> None:
        """A command that goes before every other one not sent yet (in the order of these calls)."""
        if not self.up:
            return
        self._first.append(_Op(_COMMAND, args, None))
        if not self._queue:
            self._wake.set()

    def nudge(self) -> None:
        """Run ``before_send`` soon even if nothing is queued (it may have something to add)."""
        if self.up:
            self._nudged = True
            self._wake.set()

    def publish_last(self, channel: str, payload: str) -> None:
        """From ``before_send``: one more PUBLISH at the end of what is about to be sent."""
        self._queue.append(_Op(_PUBLISH, (channel, payload), None))

    def register_script(self, name: str, lua: str) -> None:
        self._lua[name] = lua

    def _push(self, op: _Op) -> None:
        if not self.up:
            if op.done is not None:
                op.done(LinkDown("Redis is unreachable"))
            return
        self._queue.append(op)
        if len(self._queue) == 1:
            self._wake.set()

    # -- life ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """The first connection: raises OSError/RedisError when Redis cannot be reached."""
        await self._open()
        self._start_tasks()

    def _start_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._last_pong = time.monotonic()
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._reader()),
                       asyncio.create_task(self._keepalive())]

    async def _open(self) -> None:
        redis = aioredis.Redis.from_url(
            # No read timeout on the sockets: the subscribed one waits as long as nobody publishes. Commands
            # are bounded by wait_for, and the subscribed connection by the keepalive's PINGs.
            self.url, socket_timeout=None, socket_connect_timeout=COMMAND_TIMEOUT_S, protocol=2,
            health_check_interval=0, single_connection_client=False,
            # Text may hold bytes that are not UTF-8 (lone surrogates, as lines keep them): sent as they came.
            # Strict encoding raised in the writer, which took Redis for broken. Lua's cjson passes them.
            encoding_errors="surrogateescape",
        )
        try:
            await redis.ping()
            pubsub = redis.pubsub(ignore_subscribe_messages=False)
            # Connect the subscribed connection now (a PING on it), so the reader has something to read.
            await pubsub.ping()
            # Loaded on every connection: a Redis that restarted has forgotten them.
            for name, lua in self._lua.items():
                self._scripts[name] = await redis.script_load(lua)
        except BaseException:
            await redis.aclose()
            raise
        self._redis = redis
        self._pubsub = pubsub
        self._subscribed = set()
        self.up = True

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._teardown()

    async def _teardown(self) -> None:
        pubsub, redis = self._pubsub, self._redis
        self._pubsub = self._redis = None
        for closer in (pubsub.aclose if pubsub else None, redis.aclose if redis else None):
            if closer is not None:
                with contextlib.suppress(Exception):  # one that failed already: nothing left to close
                    await closer()

    def _broken(self, why: str) -> None:
        """A connection failed: fail what waits, tell the node, reconnect in the background."""
        if not self.up or self._closing:
            return
        self.up = False
        log.warning("cluster: lost Redis (%s); serving local users only until it is back", why)
        # Emptied in place: a writer still running (the other connection failed first) must not send them
        # after their callbacks were told LinkDown (they would run twice).
        queued = list(self._queue)
        self._queue.clear()
        self._first.clear()
        down = LinkDown(f"Redis is unreachable ({why})")
        for op in queued:
            if op.done is not None:
                op.done(down)
        for future in self._confirm.values():
            if not future.done():
                future.set_exception(down)
        self._confirm.clear()
        self._on_down(why)
        asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await self._teardown()
        delay = RECONNECT_FIRST_S
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._open()
            except (TimeoutError, OSError, RedisError) as exc:
                log.debug("cluster: Redis still unreachable: %s", exc)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self.reconnects += 1
            log.warning("cluster: Redis is back; resynchronising")
            self._start_tasks()
            self._on_up()
            return

    # -- the writer ------------------------------------------------------------------------------

    async def _writer(self) -> None:
        queue = self._queue
        first = self._first
        while True:
            if not queue and not first and self._nudged:
                self._nudged = False
                try:
                    self._before_send()  # may add a publication (see nudge)
                except Exception:
                    log.exception("cluster: internal error before sending to Redis")
            if not queue and not first:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                self._before_send()
                batch: list[_Op] = []
                while first:
                    batch.append(first.popleft())
                op = queue[0] if queue else None
                if op is not None and (op.kind == _SUBSCRIBE or op.kind == _UNSUBSCRIBE):
                    if batch:
                        await self._send(batch)
                    queue.popleft()
                    await self._change_subscription(op)
                    continue
                while queue and len(batch) < PIPELINE_MAX and queue[0].kind not in (_SUBSCRIBE, _UNSUBSCRIBE):
                    batch.append(queue.popleft())
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, RedisError, LinkDown) as exc:
                self._broken(str(exc) or type(exc).__name__)
                return
            except Exception:
                log.exception("cluster: internal error sending to Redis")
                self._broken("internal error")
                return

    async def _send(self, batch: list[_Op]) -> None:
        redis = self._redis
        if redis is None:
            raise LinkDown("no connection")
        pipe = redis.pipeline(transaction=False)
        published = 0
        for op in batch:
            kind = op.kind
            if kind == _PUBLISH:
                pipe.publish(*op.args)
                published += 1
            elif kind == _SCRIPT:
                name, keys, args = op.args
                pipe.evalsha(self._scripts[name], len(keys), *keys, *args)
            else:
                pipe.execute_command(*op.args)
        started = time.perf_counter()
        try:
            results = await asyncio.wait_for(pipe.execute(raise_on_error=False), COMMAND_TIMEOUT_S)
        except BaseException as exc:
            # Sent, and no reply will come: each callback is still told, once (a JOIN waiting on one would
            # otherwise never be answered).
            down = exc if isinstance(exc, LinkDown) else LinkDown(f"Redis is unreachable ({exc or type(exc).__name__})")
            for op in batch:
                if op.done is not None:
                    try:
                        op.done(down)
                    except Exception:
                        log.exception("cluster: internal error in a reply's callback")
            raise
        self.publish_seconds += time.perf_counter() - started
        self.pipelines += 1
        self.published += published
        for op, result in zip(batch, results, strict=True):
            if op.done is not None:
                try:
                    op.done(result)
                except Exception:
                    log.exception("cluster: internal error in a reply's callback")

    async def _change_subscription(self, op: _Op) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            raise LinkDown("no connection")
        channels = [c.encode() for c in op.args]
        log.debug("cluster: %s %s", "unsubscribe" if op.kind == _UNSUBSCRIBE else "subscribe", op.args)
        if op.kind == _UNSUBSCRIBE:
            channels = [c for c in channels if c in self._subscribed]
            if channels:
                self._subscribed.difference_update(channels)
                await pubsub.unsubscribe(*channels)
            return
        new = [c for c in channels if c not in self._subscribed]
        if new:
            loop = asyncio.get_running_loop()
            waits = []
            for channel in new:
                future = self._confirm.get(channel)
                if future is None:
                    future = self._confirm[channel] = loop.create_future()
                waits.append(future)
            self._subscribed.update(new)
            try:
                await pubsub.subscribe(*new)
                await asyncio.wait_for(asyncio.gather(*waits), COMMAND_TIMEOUT_S)
            except BaseException as exc:
                if op.done is not None:  # told, once, as a pipeline's ops are (see _send)
                    op.done(exc if isinstance(exc, LinkDown) else LinkDown(f"Redis is unreachable ({exc!r})"))
                raise
        if op.done is not None:
            op.done(None)

    async def _keepalive(self) -> None:
        try:
            while True:
                slept_at = time.monotonic()
                await asyncio.sleep(KEEPALIVE_S)
                now = time.monotonic()
                if now - slept_at > 2 * KEEPALIVE_S:
                    # This loop was held (a long synchronous step): the PONGs may be there, unread. Judge
                    # from the PINGs sent from now on, not from the loop's own stall.
                    self._last_pong = max(self._last_pong, now)
                if now - self._last_pong > KEEPALIVE_S * KEEPALIVE_MISSES:
                    self._broken("no answer to PING on the subscribed connection")
                    return
                pubsub = self._pubsub
                if pubsub is None:
                    return
                await asyncio.wait_for(pubsub.ping(), COMMAND_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except (TimeoutError, OSError, RedisError) as exc:
            self._broken(str(exc) or type(exc).__name__)

    # -- the reader ------------------------------------------------------------------------------

    async def _reader(self) -> None:
        """The subscribed connection, read straight from its socket with hiredis's parser: a burst of
        messages is one read and a loop, not a round of redis-py's coroutines per message (every node reads
        every message of every channel it has members in)."""
        pubsub = self._pubsub
        assert pubsub is not None
        connection = pubsub.connection
        stream = connection._reader if connection is not None else None  # (redis-py's, connected by _open)
        on_message = self._on_message
        parser = hiredis.Reader()
        try:
            if stream is None:
                raise LinkDown("the subscribed connection is not open")
            while True:
                data = await stream.read(READ_SIZE)
                if not data:
                    raise ConnectionError("Redis closed the subscribed connection")
                parser.feed(data)
                message = parser.gets()
                while message is not False:
                    if type(message) is list:
                        kind = message[0]
                        if kind == b"message":
                            self.received += 1
                            try:
                                on_message(message[1], message[2])
                            except Exception:
                                log.exception("cluster: internal error handling a message from Redis")
                        elif kind == b"pong":
                            self._last_pong = time.monotonic()
                        elif kind == b"subscribe":
                            future = self._confirm.pop(message[1], None)
                            if future is not None and not future.done():
                                future.set_result(None)
                    elif isinstance(message, hiredis.ReplyError):
                        log.warning("cluster: Redis answered the subscribed connection with an error: %s", message)
                    else:  # PONG (the keepalive's) as a plain reply
                        self._last_pong = time.monotonic()
                    message = parser.gets()
        except asyncio.CancelledError:
            raise
        except (TimeoutError, OSError, RedisError) as exc:
            self._broken(str(exc) or type(exc).__name__)
        except Exception:
            log.exception("cluster: internal error reading from Redis")
            self._broken("internal error")
