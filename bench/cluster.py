"""The cluster's figures: the same scenarios on one salotto alone and on 1, 2, 3 nodes joined by Redis.

``python -m bench.cluster [--repeat 3] [--nodes 1,2,3] [--duration 10] [--quick]``

Starts a throwaway PostgreSQL (``tests/postgres.py``, fsync on, a fresh database for every run) and, for
every run, a throwaway ``redis-server`` (no persistence, a free loopback port) and N ``salotto serve``
nodes with the bench's salotto config (``bench/peers/salotto.toml``: flood limits lifted, history off) plus
``backplane = "redis"``, ``redis_url``, ``node_name`` and the PostgreSQL store. Client i of a run connects
to node i % N. Setups, all in the same run and interleaved (every scenario and setup once per repeat):

* ``local``: one node, ``backplane = "local"`` (no Redis): the yardstick;
* ``redis-N``: N nodes and Redis; ``redis-1`` against ``local`` is what the backplane itself costs.

Scenarios (``bench/scenarios.py``, the workers spread over the nodes):

* ``cluster-fanout``: C=300 in one channel, S=10 senders as fast as the windows allow. Server CPU per
  delivery, summed over the nodes (``/proc/PID/stat`` of each), against ``local``'s; Redis's CPU per
  message beside it;
* ``cluster-fanout-paced``: C=100, S=10 at 500 messages/s in all (as ``fanout-paced``): delivery latency;
* ``cluster-connect``: registrations/s and CPU per registration, summed over the nodes.

Each run is one JSON line in ``bench/results.jsonl`` (``"suite": "cluster"``, which keeps them out of
docs/benchmarks.md's generated tables) and on stderr; the medians go to stdout as Markdown tables, with the
issue's bars checked below them. ``--quick``: tiny sizes, one repeat, about a second a run (smoke test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli import DEFAULT_RESULTS, default_workers
from bench.report import latest_medians
from bench.scenarios import (
    BenchError,
    ConnectParams,
    FanoutParams,
    GeneratorParams,
    Target,
    emit,
    run_connect,
    run_fanout,
)
from bench.servers import (
    SERVERS,
    ConfigValue,
    RunningServer,
    ServerError,
    ServerSpec,
    start_server,
)
from bench.stats import raise_nofile_limit

if TYPE_CHECKING:
    from tests.postgres import PostgresServer
    from tests.redis_server import RedisServer

__all__ = ["Setup", "main"]

REPO = Path(__file__).resolve().parent.parent
# The bars (issue 17, "Figures").
FANOUT_CPU_BAR = 1.25  # server CPU per delivery, summed over the nodes, at most this times local's
PACED_P99_BAR_MS = 5.0  # paced fanout's delivery p99 on loopback
REGISTRATION_NODES = 3  # registrations/s with this many nodes at least local's


@dataclass(frozen=True)
class Setup:
    """One way to run the server: ``nodes`` salotto processes, on Redis or (one node) alone."""

    nodes: int
    redis: bool

    @property
    def name(self) -> str:
        return f"redis-{self.nodes}" if self.redis else "local"


@dataclass
class _Running:
    setup: Setup
    nodes: list[RunningServer] = field(default_factory=list)
    redis: RedisServer | None = None
    profiled: bool = False

    def target(self) -> Target:
        side = (("redis", self.redis.pid),) if self.redis is not None else ()
        return Target("127.0.0.1", self.nodes[0].port, self.nodes[0].pid, f"salotto {self.setup.name}",
                      ports=tuple(node.port for node in self.nodes), pids=tuple(node.pid for node in self.nodes),
                      side_pids=side, on_phase=self._profile_phase if self.profiled else None)

    def _profile_phase(self, phase: str) -> None:
        """Profiled nodes: their profilers on for the measured phase only (not registrations and joins)."""
        signum = signal.SIGUSR1 if phase == "measure" else signal.SIGUSR2
        for node in self.nodes:
            node.proc.send_signal(signum)

    def log_tail(self) -> str:
        return "\n".join(f"-- node {i}:\n{node.log_tail()}" for i, node in enumerate(self.nodes))


# ``python -c`` this STATS_FILE ARGS...: salotto ARGS with cProfile on from SIGUSR1 to SIGUSR2 (the measured
# phase: see _Running.target), timed by the process's CPU clock (the default, a wall clock, counts the event
# loop's waits as time spent in it); the main thread only.
_PROFILE_MAIN = """
import cProfile, runpy, signal, sys, time
stats_file = sys.argv.pop(1)
profiler = cProfile.Profile(time.process_time)
signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
try:
    runpy.run_module("salotto", run_name="__main__")
except SystemExit:
    pass
finally:
    profiler.dump_stats(stats_file)
"""


def _profiled(spec: ServerSpec, stats_file: Path) -> ServerSpec:
    """``spec`` run under cProfile, its statistics written to ``stats_file`` when it exits (on SIGTERM)."""
    def command(rundir: Path, port: int, extra: Mapping[str, ConfigValue | None]) -> list[str]:
        argv = spec.command(rundir, port, extra)  # [salotto, serve, ...]
        return [sys.executable, "-c", _PROFILE_MAIN, str(stats_file), *argv[1:]]

    return replace(spec, command=command)


@contextmanager
def _started(setup: Setup, storage_url: str, profile: Path | None = None) -> Iterator[_Running]:
    """Redis (if the setup has it) and the setup's nodes, stopped on the way out. ``profile``: each node
    runs under cProfile, its statistics in ``<profile>-<node>.prof``."""
    running = _Running(setup, profiled=profile is not None)
    try:
        extra: dict[str, ConfigValue | None] = {"storage_backend": "postgresql", "storage_url": storage_url}
        if setup.redis:
            from tests.redis_server import start_redis  # the tests' throwaway Redis: no RDB, no AOF, a free port

            try:
                running.redis = start_redis()
            except (FileNotFoundError, RuntimeError) as exc:
                raise ServerError(str(exc)) from None
            extra.update(backplane="redis", redis_url=running.redis.url)
        for index in range(setup.nodes):
            node_extra = {**extra, "node_name": f"n{index}"} if setup.redis else extra
            spec = SERVERS["salotto"]
            if profile is not None:
                spec = _profiled(spec, profile.with_name(f"{profile.name}-n{index}.prof"))
            running.nodes.append(start_server(spec, node_extra))
        yield running
    finally:
        for node in running.nodes:
            node.stop()
        if running.redis is not None:
            running.redis.close()


@dataclass(frozen=True)
class Sizes:
    duration_s: float = 10.0
    fanout_clients: int = 300
    paced_clients: int = 100
    senders: int = 10
    paced_rate: float = 500.0
    connect_clients: int = 10_000


QUICK = Sizes(duration_s=1.0, fanout_clients=30, paced_clients=20, senders=4, paced_rate=100.0, connect_clients=60)


def _scenarios(sizes: Sizes) -> list[FanoutParams | ConnectParams]:
    return [
        FanoutParams(sizes.fanout_clients, sizes.senders, sizes.duration_s, name="cluster-fanout"),
        FanoutParams(sizes.paced_clients, sizes.senders, sizes.duration_s, rate=sizes.paced_rate,
                     name="cluster-fanout-paced"),
        ConnectParams(sizes.connect_clients, name="cluster-connect"),
    ]


def _measure(params: FanoutParams | ConnectParams, setup: Setup, postgres: PostgresServer,
             gen: GeneratorParams, profile: Path | None = None) -> dict[str, Any]:
    database = postgres.create_database()
    try:
        with _started(setup, postgres.url(database), profile) as running:
            target = running.target()
            try:
                if isinstance(params, FanoutParams):
                    record = run_fanout(target, params, gen)
                    record["redis_us_per_message"] = _per(record.get("redis_cpu_s"), record["messages_sent"])
                else:
                    record = run_connect(target, params, gen)
                    record["redis_us_per_registration"] = _per(record.get("redis_cpu_s"), record["clients"])
            except BenchError as exc:
                tail = running.log_tail()
                _log(f"{params.name} on {setup.name} failed: {exc}\n{tail}")
                return {"name": params.name, "server": target.label, "error": f"{exc}\n{tail}"}
    except ServerError as exc:
        _log(str(exc))
        return {"name": params.name, "server": f"salotto {setup.name}", "error": str(exc)}
    finally:
        postgres.drop_database(database)
    record.update(setup=setup.name, nodes=setup.nodes, backplane="redis" if setup.redis else "local")
    return record


def _per(cpu_s: float | None, count: int) -> float | None:
    """Microseconds of CPU per item."""
    return None if cpu_s is None or count <= 0 else cpu_s / count * 1e6


def _log(text: str) -> None:
    print(f"bench.cluster: {text}", file=sys.stderr, flush=True)


# -- the report ---------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _ratio(value: Any, base: Any) -> float | None:
    ok = isinstance(value, int | float) and isinstance(base, int | float) and base > 0
    return value / base if ok else None


def render(medians: dict[tuple[str, str], dict[str, Any]], setups: list[Setup], command: str, run_id: str,
           repeat: int) -> str:
    """The medians as Markdown: one table per kind of scenario, then the issue's bars, pass or not."""
    def row(name: str, setup: Setup) -> dict[str, Any] | None:
        return medians.get((name, f"salotto {setup.name}"))

    local = Setup(1, redis=False)
    lines = [f"`{command}` (run {run_id}; medians of {repeat}; {os.cpu_count()} CPUs, generator on the same "
             "machine). Server CPU is every node's utime + stime summed; \"vs local\": the ratio to one node alone "
             "(backplane local).", ""]
    lines += ["| scenario | setup | C | offered msg/s | deliveries/s | p50 ms | p99 ms | max ms | lost | "
              "server CPU-s | CPU-s per 10⁶ deliveries | vs local | per node CPU-s | Redis CPU-s | "
              "Redis µs per message |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name in ("cluster-fanout", "cluster-fanout-paced"):
        base = row(name, local)
        for setup in setups:
            r = row(name, setup)
            if r is None:
                continue
            per_node = " / ".join(_fmt(cpu) for cpu in r.get("node_cpu_s") or [])
            lines.append("| " + " | ".join([
                name, setup.name, _fmt(r["clients"]), _fmt(r.get("rate") or "max"), _fmt(r["deliveries_per_s"]),
                _fmt(r["latency_p50_ms"]), _fmt(r["latency_p99_ms"]), _fmt(r["latency_max_ms"]), _fmt(r["lost"]),
                _fmt(r["server_cpu_s"]), _fmt(r["cpu_s_per_million"]),
                _fmt(_ratio(r["cpu_s_per_million"], base and base["cpu_s_per_million"])), per_node,
                _fmt(r.get("redis_cpu_s")), _fmt(r.get("redis_us_per_message")),
            ]) + " |")
    lines += ["", "| scenario | setup | clients | registrations/s | vs local | CPU ms per registration | vs local | "
              "Redis µs per registration | RSS KiB per 1,000 (all nodes) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = row("cluster-connect", local)
    for setup in setups:
        r = row("cluster-connect", setup)
        if r is None:
            continue
        lines.append("| " + " | ".join([
            "cluster-connect", setup.name, _fmt(r["clients"]), _fmt(r["registrations_per_s"]),
            _fmt(_ratio(r["registrations_per_s"], base and base["registrations_per_s"])),
            _fmt(r.get("cpu_ms_per_registration")),
            _fmt(_ratio(r.get("cpu_ms_per_registration"), base and base.get("cpu_ms_per_registration"))),
            _fmt(r.get("redis_us_per_registration")), _fmt(r.get("rss_kib_per_1000")),
        ]) + " |")
    lines += ["", *_bars(row, setups, local)]
    return "\n".join(lines)


def _bars(row: Any, setups: list[Setup], local: Setup) -> list[str]:
    lines = ["Bars (issue 17):", ""]

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    base = row("cluster-fanout", local)
    for setup in setups:
        r = row("cluster-fanout", setup)
        if setup.redis and r is not None and base is not None:
            ratio = _ratio(r["cpu_s_per_million"], base["cpu_s_per_million"])
            ok = None if ratio is None else ratio <= FANOUT_CPU_BAR
            lines.append(f"- fanout CPU per delivery, {setup.name}: {_fmt(ratio)} times local "
                         f"(bar: at most {FANOUT_CPU_BAR}): {verdict(ok)}")
    for setup in setups:
        r = row("cluster-fanout-paced", setup)
        if setup.redis and r is not None:
            p99 = r["latency_p99_ms"]
            ok = None if p99 is None else p99 <= PACED_P99_BAR_MS and r["lost"] == 0
            lines.append(f"- paced delivery p99, {setup.name}: {_fmt(p99)} ms "
                         f"(bar: at most {PACED_P99_BAR_MS} ms, none lost): {verdict(ok)}")
    base = row("cluster-connect", local)
    for setup in setups:
        r = row("cluster-connect", setup)
        if setup.redis and setup.nodes == REGISTRATION_NODES and r is not None and base is not None:
            ratio = _ratio(r["registrations_per_s"], base["registrations_per_s"])
            ok = None if ratio is None else ratio >= 1.0
            lines.append(f"- registrations/s, {setup.name}: {_fmt(ratio)} times local (bar: at least 1): {verdict(ok)}")
    return lines


# -- command line -------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,2,3", help="node counts of the Redis setups, comma-separated")
    parser.add_argument("--no-local", action="store_true", help="leave out one node without Redis")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario and setup (medians)")
    parser.add_argument("--duration", type=float, default=Sizes.duration_s, help="seconds of traffic per fanout")
    parser.add_argument("--connect-clients", type=int, default=Sizes.connect_clients,
                        help="clients registered in cluster-connect")
    parser.add_argument("--scenarios", default="cluster-fanout,cluster-fanout-paced,cluster-connect",
                        help="comma-separated, from the default")
    parser.add_argument("--workers", type=int, default=default_workers(), help="load generator processes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (smoke test)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines table to append to")
    parser.add_argument("--no-save", action="store_true", help="append nothing to the results table")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run every node under cProfile; its statistics in DIR/SCENARIO-SETUP-REPEAT-nI.prof "
                        "(python -m pstats FILE). The profiler slows the nodes: figures of such a run are not "
                        "comparable with others")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # unwind: stop what we started
    try:
        counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    except ValueError:
        _log(f"--nodes: expected numbers like 1,2,3, got {args.nodes!r}")
        return 2
    if any(n < 1 for n in counts):
        _log("--nodes: at least one node each")
        return 2
    setups = ([] if args.no_local else [Setup(1, redis=False)]) + [Setup(n, redis=True) for n in counts]
    sizes = QUICK if args.quick else Sizes(duration_s=args.duration, connect_clients=args.connect_clients)
    table = {params.name: params for params in _scenarios(sizes)}
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in table]
    if unknown or not setups:
        _log(f"unknown scenario: {', '.join(unknown)}" if unknown else "nothing to run")
        return 2
    repeat = 1 if args.quick else args.repeat
    if shutil.which("redis-server") is None and any(setup.redis for setup in setups):
        _log("redis-server is not installed: apt-get install redis-server")
        return 3

    from tests.postgres import NOT_INSTALLED, postgres_bin_dir, start_postgres

    if postgres_bin_dir() is None:
        _log(NOT_INSTALLED)
        return 3
    raise_nofile_limit()  # nodes and workers inherit it
    run_id = time.strftime("%Y%m%dT%H%M%S")
    command = " ".join(["python -m bench.cluster", *(argv if argv is not None else sys.argv[1:])])
    version = SERVERS["salotto"].version()
    commit = _commit()
    gen = GeneratorParams(workers=args.workers, inflight=SERVERS["salotto"].connect_inflight)
    records = []
    postgres = start_postgres(durable=True)  # fsync on, as a real server has it
    try:
        for index in range(repeat):
            for name in chosen:
                for setup in setups:
                    _log(f"{name} #{index + 1} on {setup.name}")
                    profile = None
                    if args.profile is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        profile = args.profile / f"{name}-{setup.name}-{index + 1}"
                    record = _measure(table[name], setup, postgres, gen, profile)
                    record.update(suite="cluster", run_id=run_id, repeat=index, command=command,
                                  server_version=version, commit=commit)
                    if profile is not None:
                        record["profiled"] = True
                    emit(record, None if args.no_save else args.results, sys.stderr)  # stdout: the tables
                    records.append(record)
    finally:
        postgres.stop()
    print(render(latest_medians(records), setups, command, run_id, repeat))
    return 1 if any("error" in record for record in records) else 0


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


if __name__ == "__main__":
    raise SystemExit(main())
