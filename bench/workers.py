"""Load generator worker processes: each runs its share of the clients on its own (uv)loop.

The coordinator (``bench.scenarios``) starts the workers, steps them through the phases of a scenario over a
pipe, and merges what they report. Messages on the pipe are tuples whose first item names them:

    fanout:  worker "ready" -> coordinator "go" -> worker "sent" -> coordinator "expect" -> worker "result"
             (during "go", senders and witnesses of all workers also share a table of acknowledgements)
    connect: worker "spawned" -> coordinator "go" -> worker "registered" -> coordinator "quit" -> "closed"
    direct:  worker "ready" -> coordinator "go" -> worker "result"
    crowd:   worker "spawned" -> coordinator "go" -> worker "registered" -> coordinator "join" -> worker
             "joined" -> coordinator "drain" -> worker "drained", then per message coordinator "message" ->
             worker "got"; coordinator "quit" -> worker "closed"

A worker that fails sends ("error", text) and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, MutableSequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from time import monotonic_ns
from typing import Any, TypeVar

from bench.ircconn import BenchClient, WorkerStats, open_client
from bench.stats import raise_nofile_limit

__all__ = ["WorkerPlan", "worker_main"]

T = TypeVar("T")
# Shared memory (multiprocessing.RawArray of int64), one row per worker and one column per sender: the last
# sequence number that worker's witness saw from that sender.
AckTable = MutableSequence[int]

# How long to wait for one registration or JOIN before calling the run failed.
SETUP_TIMEOUT_S = 60.0
# Concurrent JOINs per worker: enough to be quick, few enough not to burst a server's receive buffers.
JOIN_CONCURRENCY = 20
# A sender whose window stays full this long means the witness lost the messages: stop and report it.
STALL_TIMEOUT_S = 10.0
# A sender with a full window looks at the shared acknowledgements this often (uvloop's timers are 1 ms).
ACK_POLL_S = 0.001
# After the senders stop, wait this long without progress for missing deliveries before counting them lost.
DRAIN_IDLE_S = 2.0
# A crowd's clients send a PING this often until they have joined (see _keepalive).
KEEPALIVE_S = 60.0
# Longest join phase (100,000 members on a server that shows every JOIN to every member: 5·10⁹ lines).
JOIN_TIMEOUT_S = 3600.0


@dataclass
class WorkerPlan:
    """What one worker does; built by the coordinator and pickled to the worker process."""

    scenario: str  # "fanout", "connect", "direct" or "crowd"
    host: str
    port: int
    nicks: list[str]
    inflight: int  # registrations in flight in this worker
    ports: list[int] = field(default_factory=list)  # each client's port (a cluster's nodes); empty: port for all
    source_addrs: list[str] = field(default_factory=list)
    channel: str = ""
    senders: dict[int, int] = field(default_factory=dict)  # local client position -> global sender index
    probes: list[int] = field(default_factory=list)  # local positions that parse every message for latency
    witness: int | None = None  # local position whose receipts open the senders' windows
    worker_index: int = 0
    workers: int = 1
    total_senders: int = 0
    window: int = 8
    interval_s: float | None = None  # per sender; None sends as fast as the window allows
    body_pad: bytes = b""


def worker_main(plan: WorkerPlan, conn: Connection, acks: AckTable | None = None) -> None:
    """Process entry point; ``acks`` is the fanout's table shared by all workers (sequence numbers)."""
    raise_nofile_limit()
    try:
        import uvloop

        runner: Callable[[Awaitable[None]], None] = uvloop.run  # type: ignore[assignment]
    except ImportError:  # the bench still works, only slower
        runner = asyncio.run  # type: ignore[assignment]
    try:
        runner(_run(plan, conn, acks))
    except Exception as exc:  # report, don't hang the coordinator
        while isinstance(exc, ExceptionGroup):
            exc = exc.exceptions[0]
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _run(plan: WorkerPlan, conn: Connection, acks: AckTable | None) -> None:
    if plan.scenario == "fanout":
        await _fanout(plan, conn, acks)
    elif plan.scenario == "connect":
        await _connect(plan, conn)
    elif plan.scenario == "crowd":
        await _crowd(plan, conn)
    else:
        await _direct(plan, conn)


async def _recv(conn: Connection, expected: str) -> tuple[Any, ...]:
    message: tuple[Any, ...] = await asyncio.to_thread(conn.recv)
    if message[0] != expected:
        raise RuntimeError(f"expected {expected!r} from the coordinator, got {message[0]!r}")
    return message


async def _open_all(
    plan: WorkerPlan, stats: WorkerStats, live: list[BenchClient] | None = None
) -> tuple[list[BenchClient], int, int]:
    """Register every client, at most ``plan.inflight`` at a time; return them and the first/last times.

    ``live``, if given, gets each client as soon as it is registered."""
    gate = asyncio.Semaphore(max(1, plan.inflight))
    sources: Iterator[str | None] = itertools.cycle(plan.source_addrs or [None])
    first_ns = monotonic_ns()

    async def one(nick: str, port: int, source: str | None) -> BenchClient:
        async with gate:
            client = await open_client(plan.host, port, nick, stats, source, SETUP_TIMEOUT_S)
        if live is not None:
            live.append(client)
        return client

    ports = plan.ports or [plan.port] * len(plan.nicks)
    clients = await _all(one(nick, port, next(sources)) for nick, port in zip(plan.nicks, ports, strict=True))
    return clients, first_ns, monotonic_ns()


async def _join_all(clients: list[BenchClient], channel: str, timeout_s: float = SETUP_TIMEOUT_S) -> None:
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def one(client: BenchClient) -> None:
        async with gate:
            client.join(channel)
            await asyncio.wait_for(asyncio.shield(client.joined), timeout_s)

    await _all(one(client) for client in clients)


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest (TaskGroup) instead of leaving them running."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(coro) for coro in coros]
    return [task.result() for task in tasks]


def _close_all(clients: list[BenchClient]) -> None:
    for client in clients:
        client.close()


# -- connect: registrations per second, then idle connections held for the memory figure ---------------------


async def _connect(plan: WorkerPlan, conn: Connection) -> None:
    stats = WorkerStats()
    conn.send(("spawned",))  # workers start together, or the slowest process start would count as time
    _, start_ns = await _recv(conn, "go")
    await asyncio.sleep(max(0.0, (start_ns - monotonic_ns()) / 1e9))
    clients, first_ns, last_ns = await _open_all(plan, stats)
    conn.send(("registered", {"first_ns": first_ns, "last_ns": last_ns, "clients": len(clients)}))
    await _recv(conn, "quit")
    conn.send(("closed", {"disconnected": stats.disconnected}))
    _close_all(clients)


# -- crowd: N idle members of one channel, then a few messages from one of them to all ----------------------


async def _crowd(plan: WorkerPlan, conn: Connection) -> None:
    """Register (timed, like connect), join ``plan.channel`` (timed, bytes and lines counted), then for
    each "message" from the coordinator the sender (``plan.senders``, in one worker) writes one line with
    its send time and every other client parses what it gets: latency of each delivery, none lost."""
    stats = WorkerStats()
    conn.send(("spawned",))
    _, start_ns = await _recv(conn, "go")
    await asyncio.sleep(max(0.0, (start_ns - monotonic_ns()) / 1e9))
    live: list[BenchClient] = []
    keepalive = asyncio.create_task(_keepalive(live))
    clients, first_ns, last_ns = await _open_all(plan, stats, live)
    conn.send(("registered", {"first_ns": first_ns, "last_ns": last_ns, "clients": len(clients)}))

    await _recv(conn, "join")
    for client in clients:
        client.join_mode()
    join_start_ns = monotonic_ns()
    await _join_all(clients, plan.channel, JOIN_TIMEOUT_S)
    conn.send(("joined", {"first_ns": join_start_ns, "last_ns": monotonic_ns()}))
    # Every member's 366 is in, but a server that tells every member of every JOIN may still hold most of
    # those lines in its send queues: once all workers have joined, a PING from every client, whose PONG
    # comes after them.
    await _recv(conn, "drain")
    await asyncio.wait_for(asyncio.gather(*(client.drain() for client in clients)), JOIN_TIMEOUT_S)
    keepalive.cancel()  # the phases measured from here are short, and idle is what they measure
    drained = {
        "last_ns": monotonic_ns(), "bytes": stats.received_bytes, "lines": stats.received_lines,
        "disconnected": stats.disconnected,
    }  # fmt: skip
    stats.reset()
    for client in clients:
        client.probe_mode()
    conn.send(("drained", drained))

    sender = next(iter(plan.senders), None)
    channel = plan.channel.encode()
    per_message = len(clients) - (sender is not None)
    expected = counted = 0
    while True:
        message = await asyncio.to_thread(conn.recv)
        if message[0] == "quit":
            break
        if message[0] != "message":
            raise RuntimeError(f"expected 'message' or 'quit' from the coordinator, got {message[0]!r}")
        # Counted from the start of the phase: the sender's worker may write before this one has read
        # "message", and its clients may already have the line.
        sent_ns = None
        if sender is not None:
            sent_ns = monotonic_ns()
            clients[sender].send(b"PRIVMSG %s :0 %d %d\r\n" % (channel, message[1], sent_ns))
        expected += per_message
        await _drain(stats, expected)
        got = {
            "delivered": stats.delivered - counted, "expected": per_message, "sent_ns": sent_ns,
            "last_delivery_ns": stats.last_delivery_ns,
        }  # fmt: skip
        counted = stats.delivered
        conn.send(("got", got))
    conn.send(("closed", {"disconnected": stats.disconnected, "latency": stats.latency}))
    _close_all(clients)


async def _keepalive(clients: list[BenchClient]) -> None:
    """Every KEEPALIVE_S, a PING from each client, as IRC clients send to measure lag.

    Only a server whose registration or join phase lasts minutes sees one: ngIRCd, busy for minutes with
    the N²/2 JOIN lines, reads some sockets only every minute or so, and would drop clients for not
    answering its own PING within its PongTimeout (60 s); a line of theirs that it reads in time (within
    its PingTimeout, 300 s) means it sends none.
    """
    while True:
        await asyncio.sleep(KEEPALIVE_S)
        for client in clients:
            client.send(b"PING :keepalive\r\n")


# -- fanout: channel messages from S senders to C members ---------------------------------------------------


@dataclass
class _SenderState:
    sent: int = 0
    acked: int = 0  # the lowest sequence number seen by the witnesses of all workers
    progress_ns: int = 0  # when ``acked`` last moved


async def _fanout(plan: WorkerPlan, conn: Connection, acks: AckTable | None) -> None:
    assert acks is not None
    stats = WorkerStats()
    clients, _, _ = await _open_all(plan, stats)
    await _join_all(clients, plan.channel)
    senders = {index: _SenderState() for index in plan.senders.values()}
    # This worker's row of the shared table: the witness records the last sequence seen from each sender.
    row = plan.worker_index * plan.total_senders

    def on_ack(sender: int, seq: int) -> None:
        acks[row + sender] = seq

    for pos, client in enumerate(clients):
        if pos in plan.probes or pos == plan.witness:
            client.probe_mode()
        else:
            client.count_mode()
    if plan.witness is not None:
        clients[plan.witness].on_ack = on_ack
    conn.send(("ready", {"clients": len(clients)}))

    _, start_ns, end_ns = await _recv(conn, "go")
    stats.reset()
    cpu_start = time.process_time()
    await asyncio.sleep(max(0.0, (start_ns - monotonic_ns()) / 1e9))
    channel = plan.channel.encode()
    tasks = [
        _send_loop(clients[pos], channel, index, senders[index], plan, acks, start_ns, end_ns)
        for pos, index in plan.senders.items()
    ]
    stalled = sum(await _all(tasks))
    conn.send(("sent", {index: state.sent for index, state in senders.items()}, stalled))

    _, total_sent = await _recv(conn, "expect")
    own_sent = sum(state.sent for state in senders.values())
    expected = len(clients) * total_sent - own_sent  # nobody receives their own channel messages
    await _drain(stats, expected)
    conn.send(
        (
            "result",
            {
                "delivered": stats.delivered,
                "expected": expected,
                "last_delivery_ns": stats.last_delivery_ns,
                "disconnected": stats.disconnected,
                "latency": stats.latency,
                "generator_cpu_s": time.process_time() - cpu_start,
            },
        )
    )
    await _recv(conn, "quit")
    _close_all(clients)


async def _send_loop(
    client: BenchClient,
    channel: bytes,
    index: int,
    state: _SenderState,
    plan: WorkerPlan,
    acks: AckTable,
    start_ns: int,
    end_ns: int,
) -> int:
    """Send channel messages until ``end_ns``; return 1 if the window stalled (the run is then invalid).

    Each message carries ``<sender index> <sequence> <monotonic ns>`` so receivers can time it. At most
    ``plan.window`` messages are in flight: sent, and not yet seen by the witness of every worker process,
    so a generator process that falls behind slows the senders down instead of letting queues grow.
    """
    interval_ns = int(plan.interval_s * 1e9) if plan.interval_s else 0
    # Stagger paced senders over one interval so the total rate is smooth, not a burst per tick.
    next_ns = start_ns + (index * 7919 % 1000) * interval_ns // 1000
    pad = plan.body_pad
    column = [w * plan.total_senders + index for w in range(plan.workers)]
    state.progress_ns = monotonic_ns()
    while True:
        now = monotonic_ns()
        if now >= end_ns:
            return 0
        acked = min(acks[cell] for cell in column)
        if acked != state.acked:
            state.acked, state.progress_ns = acked, now
        room = plan.window - (state.sent - acked)
        if room <= 0:
            if now - state.progress_ns > STALL_TIMEOUT_S * 1e9:
                return 1
            await asyncio.sleep(ACK_POLL_S)
            continue
        if interval_ns:
            if now < next_ns:
                await asyncio.sleep((next_ns - now) / 1e9)
                continue
            room = 1
            next_ns += interval_ns
        first = state.sent + 1
        seqs = range(first, first + room)
        client.send(b"".join(b"PRIVMSG %s :%d %d %d%s\r\n" % (channel, index, seq, now, pad) for seq in seqs))
        state.sent += room
        if not interval_ns:
            await asyncio.sleep(0)  # let receivers run between bursts


async def _drain(stats: WorkerStats, expected: int) -> None:
    last_seen, last_change = stats.delivered, time.monotonic()
    while stats.delivered < expected and time.monotonic() - last_change < DRAIN_IDLE_S:
        await asyncio.sleep(0.05)
        if stats.delivered != last_seen:
            last_seen, last_change = stats.delivered, time.monotonic()


# -- direct: pairs exchanging private messages, one round trip in flight per pair ---------------------------


async def _direct(plan: WorkerPlan, conn: Connection) -> None:
    stats = WorkerStats()
    clients, _, _ = await _open_all(plan, stats)
    pairs = list(zip(clients[0::2], clients[1::2], strict=True))
    running = True

    def initiator_receives(client: BenchClient, body: bytes) -> None:
        now = monotonic_ns()
        seq, sent_ns = body.split(b" ", 2)[:2]
        stats.latency.add((now - int(sent_ns)) // 1000)
        stats.delivered += 1
        stats.last_delivery_ns = now
        if running:
            client.send(b"PRIVMSG %s :%d %d\r\n" % (peer_of[client.nick], int(seq) + 1, monotonic_ns()))

    def responder_receives(client: BenchClient, body: bytes) -> None:
        client.send(b"PRIVMSG %s :%s\r\n" % (peer_of[client.nick], body))

    peer_of: dict[str, bytes] = {}
    for initiator, responder in pairs:
        peer_of[initiator.nick] = responder.nick.encode()
        peer_of[responder.nick] = initiator.nick.encode()
        initiator.on_body, responder.on_body = initiator_receives, responder_receives
        initiator.direct_mode()
        responder.direct_mode()
    conn.send(("ready", {"clients": len(clients)}))

    _, start_ns, end_ns = await _recv(conn, "go")
    stats.reset()
    cpu_start = time.process_time()
    await asyncio.sleep(max(0.0, (start_ns - monotonic_ns()) / 1e9))
    for initiator, responder in pairs:
        initiator.send(b"PRIVMSG %s :1 %d\r\n" % (responder.nick.encode(), monotonic_ns()))
    await asyncio.sleep(max(0.0, (end_ns - monotonic_ns()) / 1e9))
    running = False
    await asyncio.sleep(0.2)  # let the last round trips come back
    conn.send(
        (
            "result",
            {
                "round_trips": stats.delivered,
                "disconnected": stats.disconnected,
                "latency": stats.latency,
                "generator_cpu_s": time.process_time() - cpu_start,
            },
        )
    )
    await _recv(conn, "quit")
    _close_all(clients)
