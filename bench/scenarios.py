"""The coordinator side of each scenario: plan the workers, step them through the phases, merge the figures.

Each ``run_*`` function returns one flat JSON-ready record. The server is any IRC server at host:port; when
its pid is known (given, or found through /proc for a local listener) the record carries the server's CPU
time and memory, the figures that do not depend on the generator's speed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from resource import RLIM_INFINITY
from time import monotonic_ns
from typing import Any, TextIO

from bench.stats import LatencyHistogram, cpu_seconds, raise_nofile_limit, rss_kib
from bench.workers import JOIN_TIMEOUT_S, WorkerPlan, worker_main

__all__ = [
    "BenchError",
    "ConnectParams",
    "CrowdParams",
    "DirectParams",
    "FanoutParams",
    "GeneratorParams",
    "Target",
    "default_crowd_clients",
    "emit",
    "run_connect",
    "run_crowd",
    "run_direct",
    "run_fanout",
]

# Latency probes: this many receivers (spread over the join order) parse every message they get; the others
# only count. Enough for stable percentiles, few enough that parsing never limits the generator.
LATENCY_PROBES = 16
# One source address (127.0.0.N) per this many clients on loopback: ephemeral ports run out near 28,000.
CLIENTS_PER_SOURCE_ADDR = 25_000
# Time for a phase (registering 100,000 clients included) before the run is declared failed.
PHASE_TIMEOUT_S = 900.0
# Before measuring, wait (at most IDLE_WAIT_S) for a poll interval in which the server used at most
# IDLE_CPU_S of CPU: two clock ticks, i.e. idle.
IDLE_WAIT_S = 30.0
IDLE_POLL_S = 0.25
IDLE_CPU_S = 0.02
# The crowd: at most this many members by default (the goal: 100,000 on one node) ...
CROWD_MAX_CLIENTS = 100_000
# ... and fewer where the open-file limit is lower: the server holds one descriptor per member, plus its own
# (listeners, database, log, epoll, threads); every generator process one per client it runs, plus pipes.
CROWD_FD_MARGIN = 1_000
# The crowd spreads its clients over one source address (127.0.0.1, 127.0.0.2, ...) per this many.
CROWD_CLIENTS_PER_SOURCE_ADDR = 5_000
# The 100,000 that the crowd's figures are projected to.
CROWD_PROJECTED = 100_000


class BenchError(Exception):
    """A run could not complete (a worker failed, the server refused clients or died)."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    pid: int | None = None  # the server process, for CPU time and RSS; None leaves those figures out
    label: str = "server"
    # Several nodes acting as one server (bench.cluster): client i of a run connects to ports[i % len(ports)],
    # and the CPU and memory figures are those of all of ``pids`` summed. Empty: the one server at port, pid.
    ports: tuple[int, ...] = ()
    pids: tuple[int, ...] = ()
    # Processes the server relies on (name, pid), e.g. ("redis", 1234): their CPU time over the measured
    # phase is reported beside the server's, as ``<name>_cpu_s``, and not counted in it.
    side_pids: tuple[tuple[str, int], ...] = ()
    # Called with "measure" when the measured phase starts (after the CPU is read) and "measured" when it
    # ends (before): e.g. bench.cluster's --profile turns its nodes' profilers on and off.
    on_phase: Callable[[str], None] | None = None

    def port_of(self, index: int) -> int:
        """The port client ``index`` (its place in the run, from 0) connects to."""
        return self.ports[index % len(self.ports)] if self.ports else self.port

    def server_pids(self) -> tuple[int, ...]:
        return self.pids or ((self.pid,) if self.pid else ())


@dataclass(frozen=True)
class GeneratorParams:
    workers: int = 2  # load generator processes
    inflight: int = 10  # registrations in flight in all (ngircd's listen backlog is 10, miniircd's 5)


@dataclass(frozen=True)
class FanoutParams:
    clients: int = 100
    senders: int = 10
    duration_s: float = 10.0
    rate: float | None = None  # total messages/s over all senders; None: as fast as the windows allow
    window: int = 8  # messages per sender sent and not yet seen by the witness receivers of all workers
    body_bytes: int = 64  # length of the message text (timestamp fields plus padding)
    name: str = ""


@dataclass(frozen=True)
class ConnectParams:
    clients: int = 10_000
    settle_s: float = 1.0  # wait after the last registration before reading the server's RSS
    name: str = ""


@dataclass(frozen=True)
class DirectParams:
    pairs: int = 50
    duration_s: float = 10.0
    name: str = ""


@dataclass(frozen=True)
class CrowdParams:
    clients: int | None = None  # None: default_crowd_clients()
    messages: int = 10  # to the channel, one at a time, each after the previous reached everyone
    channel: str = "#lobby"
    settle_s: float = 1.0  # wait before reading the server's RSS
    idle_sample_s: float = 2.0  # the server's CPU with the crowd idle (timers, PINGs) is measured this long
    name: str = ""


def default_crowd_clients() -> int:
    """As many clients as the open-file limit lets the server hold, with a margin; at most 100,000."""
    limit = raise_nofile_limit()
    if limit == RLIM_INFINITY:
        return CROWD_MAX_CLIENTS
    return max(1, min(CROWD_MAX_CLIENTS, limit - CROWD_FD_MARGIN))


@dataclass
class _Workers:
    """The worker processes of one run and their pipes."""

    conns: list[Connection] = field(default_factory=list)
    procs: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    finished: bool = False

    @classmethod
    def start(cls, plans: list[WorkerPlan], shared_acks: int = 0) -> _Workers:
        """Start one process per plan; ``shared_acks`` > 0 gives them a shared table of that many int64."""
        ctx = multiprocessing.get_context("spawn")
        acks = ctx.RawArray("q", shared_acks) if shared_acks else None
        workers = cls()
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(plan, child, acks), daemon=True)
            proc.start()
            workers.conns.append(parent)
            workers.procs.append(proc)
        return workers

    def gather(self, tag: str, timeout_s: float = PHASE_TIMEOUT_S) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout_s
        replies = []
        for conn, proc in zip(self.conns, self.procs, strict=True):
            while not conn.poll(0.2):
                if not proc.is_alive():
                    raise BenchError(f"worker {proc.pid} exited (code {proc.exitcode}) before {tag!r}")
                if time.monotonic() > deadline:
                    raise BenchError(f"timed out waiting for workers to report {tag!r}")
            message: tuple[Any, ...] = conn.recv()
            if message[0] == "error":
                raise BenchError(f"worker {proc.pid}: {message[1]}")
            if message[0] != tag:
                raise BenchError(f"worker {proc.pid} sent {message[0]!r}, expected {tag!r}")
            replies.append(message)
        return replies

    def broadcast(self, *message: Any) -> None:
        for conn in self.conns:
            conn.send(message)
        self.finished = message[0] == "quit"

    def stop(self) -> None:
        """Let workers that were told to quit finish; end the others (a failed or interrupted run) now."""
        for proc in self.procs:
            if self.finished:
                proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _names(count: int) -> tuple[list[str], str]:
    """Distinct short nicks (9 characters up to 100,000 clients) and a channel, new for every run."""
    tag = "".join(random.choices(string.ascii_lowercase, k=3))
    return [f"b{tag}{index}" for index in range(count)], f"#bench{tag}"


def _source_addrs(host: str, clients: int) -> list[str]:
    if not host.startswith("127.") or clients <= CLIENTS_PER_SOURCE_ADDR:
        return []
    needed = -(-clients // CLIENTS_PER_SOURCE_ADDR)
    return [f"127.0.0.{n}" for n in range(1, needed + 1)]


def _spread_addrs(host: str, clients: int, per_addr: int) -> list[str]:
    """127.0.0.1, 127.0.0.2, ... 127.0.1.0, ...: one loopback source address per ``per_addr`` clients."""
    if not host.startswith("127."):
        return []
    needed = -(-clients // per_addr)
    return [f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(1, needed + 1)]


def _split(count: int, workers: int) -> list[list[int]]:
    """Global client indices per worker, round-robin so that every worker has early and late joiners."""
    workers = max(1, min(workers, count))
    return [list(range(w, count, workers)) for w in range(workers)]


def _sender_pos(target: Target, indices: list[int], pos: int, sender: int) -> int:
    """Where in a worker's clients sender number ``sender`` is: at ``pos``, or for a cluster the first
    client from there on whose node is ``sender % nodes`` (so that every node has its share of senders)."""
    if not target.ports:
        return pos
    node_port = target.ports[sender % len(target.ports)]
    return next((p for p in range(pos, len(indices)) if target.port_of(indices[p]) == node_port), pos)


def _ports(target: Target, indices: list[int]) -> list[int]:
    """The port of each of these clients (by their place in the run); empty when all use ``target.port``."""
    return [target.port_of(i) for i in indices] if target.ports else []


def _base_record(scenario: str, name: str, target: Target, gen: GeneratorParams) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "name": name or scenario,
        "server": target.label,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "workers": gen.workers,
    }


def _cpu(target: Target) -> float | None:
    """The server's CPU time so far (summed over its nodes); None if its pid is unknown."""
    pids = target.server_pids()
    return sum(cpu_seconds(pid) for pid in pids) if pids else None


def _phase(target: Target, name: str) -> None:
    if target.on_phase is not None:
        target.on_phase(name)


def _cpu_snapshot(target: Target) -> dict[int, float]:
    """CPU time so far of every node and side process (only read for a cluster or with side processes)."""
    if not target.pids and not target.side_pids:
        return {}
    return {pid: cpu_seconds(pid) for pid in (*target.pids, *(pid for _, pid in target.side_pids))}


def _cpu_details(target: Target, before: dict[int, float], after: dict[int, float]) -> dict[str, Any]:
    """Record fields from two snapshots: each node's CPU (a cluster) and each side process's."""
    if not before:
        return {}
    fields: dict[str, Any] = {f"{name}_cpu_s": after[pid] - before[pid] for name, pid in target.side_pids}
    if target.pids:
        fields["node_cpu_s"] = [after[pid] - before[pid] for pid in target.pids]
    return fields


def _wait_until_idle(target: Target) -> None:
    """Let the server finish earlier work (a previous run's QUITs, JOIN storms) before measuring its CPU."""
    if not target.server_pids():
        return
    deadline = time.monotonic() + IDLE_WAIT_S
    before = _cpu(target) or 0.0
    while time.monotonic() < deadline:
        time.sleep(IDLE_POLL_S)
        now = _cpu(target) or 0.0
        if now - before <= IDLE_CPU_S:
            return
        before = now


def _per_cpu(count: int, cpu_s: float | None) -> tuple[float | None, float | None]:
    """(count per server CPU-second, server CPU-seconds per million of count)."""
    if cpu_s is None or count == 0:
        return None, None
    return (count / cpu_s if cpu_s > 0 else None), cpu_s / count * 1e6


def run_fanout(target: Target, params: FanoutParams, gen: GeneratorParams) -> dict[str, Any]:
    """C clients in one channel; S of them send for D seconds; every other member should get every message."""
    if not 0 < params.senders < params.clients:
        raise BenchError("fanout needs 0 < senders < clients")
    raise_nofile_limit()
    nicks, channel = _names(params.clients)
    groups = _split(params.clients, gen.workers)
    interval_s = params.senders / params.rate if params.rate else None
    pad = b" " + b"x" * max(0, params.body_bytes - 41)  # a separate word after the three numbers
    probe_every = -(-params.clients // LATENCY_PROBES)
    plans = []
    for w, indices in enumerate(groups):
        own_senders = list(range(w, params.senders, len(groups)))
        if own_senders and len(own_senders) >= len(indices):
            raise BenchError("too few clients per worker for this many senders")
        sender_pos = {_sender_pos(target, indices, (k * len(indices)) // len(own_senders), s): s
                      for k, s in enumerate(own_senders)}
        witness = next(pos for pos in range(len(indices) - 1, -1, -1) if pos not in sender_pos)
        plans.append(
            WorkerPlan(
                scenario="fanout",
                host=target.host,
                port=target.port,
                nicks=[nicks[i] for i in indices],
                ports=_ports(target, indices),
                inflight=max(1, gen.inflight // len(groups)),
                source_addrs=_source_addrs(target.host, params.clients),
                channel=channel,
                senders=sender_pos,
                probes=[pos for pos, i in enumerate(indices) if i % probe_every == 0],
                witness=witness,
                worker_index=w,
                workers=len(groups),
                total_senders=params.senders,
                window=params.window,
                interval_s=interval_s,
                body_pad=pad,
            )
        )
    workers = _Workers.start(plans, shared_acks=len(groups) * params.senders)
    try:
        workers.gather("ready")
        _wait_until_idle(target)
        cpu_before, snap_before = _cpu(target), _cpu_snapshot(target)
        _phase(target, "measure")
        start_ns = monotonic_ns() + 50_000_000
        workers.broadcast("go", start_ns, start_ns + int(params.duration_s * 1e9))
        sent_reports = workers.gather("sent", params.duration_s + 60)
        sent = sum(sum(report[1].values()) for report in sent_reports)
        stalled = sum(report[2] for report in sent_reports)
        workers.broadcast("expect", sent)
        results = [reply[1] for reply in workers.gather("result")]
        _phase(target, "measured")
        cpu_after, snap_after = _cpu(target), _cpu_snapshot(target)
        workers.broadcast("quit")
    finally:
        workers.stop()
    delivered = sum(r["delivered"] for r in results)
    expected = sum(r["expected"] for r in results)
    last_ns = max(r["last_delivery_ns"] for r in results)
    elapsed_s = (last_ns - start_ns) / 1e9 if last_ns > start_ns else params.duration_s
    latency = LatencyHistogram()
    latency.merge(r["latency"] for r in results)
    cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    per_cpu, per_million = _per_cpu(delivered, cpu_s)
    record = _base_record("fanout", params.name, target, gen)
    record.update(
        {
            "clients": params.clients,
            "senders": params.senders,
            "duration_s": params.duration_s,
            "rate": params.rate,
            "window": params.window,
            "messages_sent": sent,
            "messages_per_s": sent / params.duration_s,
            "deliveries": delivered,
            "deliveries_per_s": delivered / elapsed_s,
            "lost": expected - delivered,
            "disconnected": sum(r["disconnected"] for r in results),
            "stalled_senders": stalled,
            "latency_samples": latency.total,
            **{f"latency_{key}": value for key, value in latency.summary().items()},
            "server_cpu_s": cpu_s,
            "deliveries_per_cpu_s": per_cpu,
            "cpu_s_per_million": per_million,
            "generator_cpu_s": sum(r["generator_cpu_s"] for r in results),
            **_cpu_details(target, snap_before, snap_after),
        }
    )
    return record


def run_connect(target: Target, params: ConnectParams, gen: GeneratorParams) -> dict[str, Any]:
    """Register N clients (registrations/s), hold them idle, and read the server's RSS growth."""
    raise_nofile_limit()
    nicks, _ = _names(params.clients)
    groups = _split(params.clients, gen.workers)
    plans = [
        WorkerPlan(
            scenario="connect",
            host=target.host,
            port=target.port,
            nicks=[nicks[i] for i in indices],
            ports=_ports(target, indices),
            inflight=max(1, gen.inflight // len(groups)),
            source_addrs=_source_addrs(target.host, params.clients),
        )
        for indices in groups
    ]
    _wait_until_idle(target)
    rss_before = _rss(target)
    workers = _Workers.start(plans)
    try:
        workers.gather("spawned")
        cpu_before, snap_before = _cpu(target), _cpu_snapshot(target)
        _phase(target, "measure")
        workers.broadcast("go", monotonic_ns() + 50_000_000)
        reports = [reply[1] for reply in workers.gather("registered")]
        # The registrations' CPU: the last 001 is out, but a cluster's nodes may still be applying the
        # last users to their replicas.
        _wait_until_idle(target)
        _phase(target, "measured")
        cpu_after, snap_after = _cpu(target), _cpu_snapshot(target)
        time.sleep(params.settle_s)
        rss_after = _rss(target)
        workers.broadcast("quit")
        closed = [reply[1] for reply in workers.gather("closed")]
    finally:
        workers.stop()
    elapsed_s = (max(r["last_ns"] for r in reports) - min(r["first_ns"] for r in reports)) / 1e9
    registered = sum(r["clients"] for r in reports)
    grown = None if rss_before is None or rss_after is None else rss_after - rss_before
    cpu_s = _minus(cpu_after, cpu_before)
    record = _base_record("connect", params.name, target, gen)
    record.update(
        {
            "clients": registered,
            "inflight": gen.inflight,
            "registrations_per_s": registered / elapsed_s if elapsed_s > 0 else None,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_kib_per_1000": None if grown is None else grown / registered * 1000,
            "disconnected": sum(c["disconnected"] for c in closed),
            "server_cpu_s": cpu_s,
            "cpu_ms_per_registration": None if cpu_s is None else cpu_s / registered * 1000,
            **_cpu_details(target, snap_before, snap_after),
        }
    )
    return record


def run_direct(target: Target, params: DirectParams, gen: GeneratorParams) -> dict[str, Any]:
    """Pairs of clients bounce private messages, one in flight per pair: round-trip latency and rate."""
    raise_nofile_limit()
    nicks, _ = _names(params.pairs * 2)
    pair_groups = _split(params.pairs, gen.workers)
    plans = [
        WorkerPlan(
            scenario="direct",
            host=target.host,
            port=target.port,
            nicks=[nick for p in pairs for nick in (nicks[2 * p], nicks[2 * p + 1])],
            ports=_ports(target, [i for p in pairs for i in (2 * p, 2 * p + 1)]),
            inflight=max(1, gen.inflight // len(pair_groups)),
        )
        for pairs in pair_groups
    ]
    workers = _Workers.start(plans)
    try:
        workers.gather("ready")
        _wait_until_idle(target)
        cpu_before = _cpu(target)
        start_ns = monotonic_ns() + 50_000_000
        workers.broadcast("go", start_ns, start_ns + int(params.duration_s * 1e9))
        results = [reply[1] for reply in workers.gather("result", params.duration_s + 60)]
        cpu_after = _cpu(target)
        workers.broadcast("quit")
    finally:
        workers.stop()
    round_trips = sum(r["round_trips"] for r in results)
    latency = LatencyHistogram()
    latency.merge(r["latency"] for r in results)
    cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    _, per_million = _per_cpu(2 * round_trips, cpu_s)
    summary = latency.summary()
    record = _base_record("direct", params.name, target, gen)
    record.update(
        {
            "pairs": params.pairs,
            "duration_s": params.duration_s,
            "round_trips": round_trips,
            "round_trips_per_s": round_trips / params.duration_s,
            "rtt_p50_ms": summary["p50_ms"],
            "rtt_p99_ms": summary["p99_ms"],
            "rtt_max_ms": summary["max_ms"],
            "disconnected": sum(r["disconnected"] for r in results),
            "server_cpu_s": cpu_s,
            "cpu_s_per_million": per_million,  # per million messages (two per round trip)
            "generator_cpu_s": sum(r["generator_cpu_s"] for r in results),
        }
    )
    return record


def run_crowd(target: Target, params: CrowdParams, gen: GeneratorParams) -> dict[str, Any]:
    """N clients register and join one channel and stay idle; then messages from one member reach all.

    Registrations/s and server CPU per registration; the join phase's time, CPU and the traffic each
    member got; RSS before, after registering and after joining; then ``messages`` channel messages, one
    at a time: latency of every delivery, time until the last member had it, server CPU per delivery.
    Each generator process holds fewer clients than the open-file limit (more processes if need be).
    """
    limit = raise_nofile_limit()
    clients = params.clients if params.clients is not None else default_crowd_clients()
    if clients < 2:
        raise BenchError("the crowd needs at least 2 clients")
    room = limit - CROWD_FD_MARGIN if limit != RLIM_INFINITY and limit > 2 * CROWD_FD_MARGIN else clients
    worker_count = max(gen.workers, -(-clients // max(1, room)))
    nicks, _ = _names(clients)
    groups = _split(clients, worker_count)
    sources = _spread_addrs(target.host, clients, CROWD_CLIENTS_PER_SOURCE_ADDR)
    plans = [
        WorkerPlan(
            scenario="crowd",
            host=target.host,
            port=target.port,
            nicks=[nicks[i] for i in indices],
            ports=_ports(target, indices),
            inflight=max(1, gen.inflight // len(groups)),
            source_addrs=sources,
            channel=params.channel,
            # The sender: worker 0's last client, one of the last to join (not the channel's creator).
            senders={len(indices) - 1: 0} if w == 0 else {},
            worker_index=w,
            workers=len(groups),
        )
        for w, indices in enumerate(groups)
    ]
    _wait_until_idle(target)
    rss_before = _rss(target)
    workers = _Workers.start(plans)
    try:
        workers.gather("spawned")
        cpu_start = _cpu(target)
        workers.broadcast("go", monotonic_ns() + 50_000_000)
        registered = [reply[1] for reply in workers.gather("registered")]
        cpu_registered = _cpu(target)
        time.sleep(params.settle_s)
        rss_registered = _rss(target)
        _wait_until_idle(target)
        cpu_join_start = _cpu(target)
        workers.broadcast("join")
        joined = [reply[1] for reply in workers.gather("joined", JOIN_TIMEOUT_S)]
        workers.broadcast("drain")
        drained = [reply[1] for reply in workers.gather("drained", JOIN_TIMEOUT_S)]
        cpu_joined = _cpu(target)
        time.sleep(params.settle_s)
        rss_after = _rss(target)
        _wait_until_idle(target)
        cpu_idle_start = _cpu(target)
        time.sleep(params.idle_sample_s)
        cpu_messages_start = _cpu(target)
        messages = []
        for seq in range(1, params.messages + 1):
            workers.broadcast("message", seq)
            messages.append([reply[1] for reply in workers.gather("got", 120)])
        cpu_messages = _cpu(target)
        workers.broadcast("quit")
        closed = [reply[1] for reply in workers.gather("closed")]
    finally:
        workers.stop()

    count = sum(r["clients"] for r in registered)
    reg_s = (max(r["last_ns"] for r in registered) - min(r["first_ns"] for r in registered)) / 1e9
    join_s = (max(r["last_ns"] for r in joined) - min(r["first_ns"] for r in joined)) / 1e9
    drain_s = (max(r["last_ns"] for r in drained) - max(r["last_ns"] for r in joined)) / 1e9
    reg_cpu = _minus(cpu_registered, cpu_start)
    join_cpu = _minus(cpu_joined, cpu_join_start)
    broadcast_cpu = _minus(cpu_messages, cpu_messages_start)
    idle_cpu = _minus(cpu_messages_start, cpu_idle_start)
    grown = _minus(rss_after, rss_before)
    registered_grown = _minus(rss_registered, rss_before)
    per_1000 = None if grown is None else grown / count * 1000
    latency = LatencyHistogram()
    to_all_ms = []
    delivered = expected = 0
    latency.merge(c["latency"] for c in closed)
    for replies in messages:
        delivered += sum(r["delivered"] for r in replies)
        expected += sum(r["expected"] for r in replies)
        sent_ns = next(r["sent_ns"] for r in replies if r["sent_ns"] is not None)
        to_all_ms.append((max(r["last_delivery_ns"] for r in replies) - sent_ns) / 1e6)
    _, per_million = _per_cpu(delivered, broadcast_cpu)
    record = _base_record("crowd", params.name, target, gen)
    record.update(
        {
            "workers": len(groups),
            "clients": count,
            "source_addrs": len(sources),
            "nofile_limit": None if limit == RLIM_INFINITY else limit,
            "inflight": gen.inflight,
            "registration_s": reg_s,
            "registrations_per_s": count / reg_s if reg_s > 0 else None,
            "registration_cpu_s": reg_cpu,
            "cpu_ms_per_registration": None if reg_cpu is None else reg_cpu / count * 1000,
            "join_s": join_s,
            "join_cpu_s": join_cpu,
            "cpu_ms_per_join": None if join_cpu is None else join_cpu / count * 1000,
            "drain_s": drain_s,
            "join_kib_per_member": sum(r["bytes"] for r in drained) / count / 1024,
            "join_lines_per_member": sum(r["lines"] for r in drained) / count,
            "rss_before_kib": rss_before,
            "rss_registered_kib": rss_registered,
            "rss_after_kib": rss_after,
            "rss_kib_per_1000": per_1000,
            "rss_kib_per_1000_registered": None if registered_grown is None else registered_grown / count * 1000,
            "idle_cpu_percent": None if idle_cpu is None else idle_cpu / params.idle_sample_s * 100,
            "messages": params.messages,
            "deliveries": delivered,
            "lost": expected - delivered,
            "to_all_ms_median": statistics.median(to_all_ms) if to_all_ms else None,
            "to_all_ms_max": max(to_all_ms, default=None),
            "latency_samples": latency.total,
            **{f"latency_{key}": value for key, value in latency.summary().items()},
            "broadcast_cpu_s": broadcast_cpu,
            "cpu_s_per_million": per_million,
            "disconnected": sum(c["disconnected"] for c in closed),
            # What 100,000 members would take, from the per-member figures measured at this size.
            "projected_clients": CROWD_PROJECTED,
            "projected_rss_mib": None if per_1000 is None or rss_before is None
            else (rss_before + per_1000 * CROWD_PROJECTED / 1000) / 1024,
            "projected_rss_registered_mib": None if registered_grown is None or rss_before is None
            else (rss_before + registered_grown / count * CROWD_PROJECTED) / 1024,
            "projected_registration_cpu_s": None if reg_cpu is None else reg_cpu / count * CROWD_PROJECTED,
            "projected_broadcast_cpu_ms": None if per_million is None else per_million * CROWD_PROJECTED / 1000,
        }
    )
    return record


def _rss(target: Target) -> int | None:
    """The server's resident memory (summed over its nodes); None if its pid is unknown."""
    pids = target.server_pids()
    return sum(rss_kib(pid) for pid in pids) if pids else None


def _minus(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def emit(record: dict[str, Any], results: Path | None, out: TextIO | None = None) -> None:
    """Print the record as one JSON line (on ``out``, default stdout) and append it to the results table
    (JSON lines) if given."""
    line = json.dumps(record, sort_keys=False)
    print(line, file=out or sys.stdout, flush=True)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        with results.open("a") as table:
            table.write(line + "\n")
