"""Run every scenario against salotto and its peers in one go, then write docs/benchmarks.md.

``bench/run-peers`` calls this. Each (scenario, repeat, server) gets a freshly started server on a free
loopback port; every run is a JSON line in the results table, and the docs show the medians.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli import DEFAULT_RESULTS, default_workers
from bench.report import write_report
from bench.scenarios import (
    BenchError,
    ConnectParams,
    CrowdParams,
    DirectParams,
    FanoutParams,
    GeneratorParams,
    Target,
    default_crowd_clients,
    emit,
    run_connect,
    run_crowd,
    run_direct,
    run_fanout,
)
from bench.servers import SERVERS, ConfigValue, RunningServer, ServerError, ServerSpec, start_server
from bench.stats import raise_nofile_limit

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

__all__ = ["Scenario", "main", "scenarios"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Scenario:
    name: str
    params: FanoutParams | ConnectParams | DirectParams | CrowdParams
    # Keys added to salotto's bench config for this scenario (e.g. history on/off; None: salotto's default
    # instead of the bench config's line); peers ignore them.
    salotto_config: Mapping[str, ConfigValue | None] = field(default_factory=dict)
    only: tuple[str, ...] = ()  # run on these servers only; () means all
    # Store on PostgreSQL: each run gets a fresh database on a server the bench starts (fsync on).
    postgresql: bool = False


# The crowd in the smoke test: a few hundred members, and salotto's large-channel threshold below that, so
# the smoke run takes the same path as the full one.
SMALL_CROWD_CLIENTS = 300
SMALL_CROWD_THRESHOLD = 100


def scenarios(duration_s: float, connect_clients: int, small: bool, crowd_clients: int | None = None) -> list[Scenario]:
    """The scenario table; ``small`` shrinks every size for the smoke test (about a second each)."""
    if small:
        duration_s = min(duration_s, 1.0)
    big, members, senders, pairs = (20, 5, 2, 2) if small else (1000, 100, 10, 50)
    history = FanoutParams(members, senders, duration_s)
    idle = min(connect_clients, 50) if small else connect_clients
    crowd = min(crowd_clients or SMALL_CROWD_CLIENTS, SMALL_CROWD_CLIENTS) if small else crowd_clients
    # The crowd's channel is above salotto's large-channel threshold, as #lobby is in production: the bench
    # config lifts the threshold (the peers have none), the crowd runs with salotto's default.
    crowd_threshold = SMALL_CROWD_THRESHOLD if small else None
    settle = 0.2 if small else 1.0
    return [
        Scenario("fanout", FanoutParams(members, senders, duration_s, name="fanout")),
        Scenario("fanout-large", FanoutParams(big, senders, duration_s, name="fanout-large")),
        # A total rate every server sustains (C=100: 49,500 deliveries/s), to compare latency without queues.
        Scenario("fanout-paced", FanoutParams(members, senders, duration_s, rate=500.0, name="fanout-paced")),
        Scenario("connect", ConnectParams(idle, name="connect")),
        Scenario("direct", DirectParams(pairs, duration_s, name="direct")),
        Scenario("crowd", CrowdParams(crowd, settle_s=settle, idle_sample_s=2 * settle, name="crowd"),
                 {"large_channel_threshold": crowd_threshold}),
        # salotto's cost of storing every message (the peers store nothing, so their rows run with it off).
        Scenario("history-on", replace(history, name="history-on"), {"history_enabled": True}, ("salotto",)),
        Scenario("history-off", replace(history, name="history-off"), {"history_enabled": False}, ("salotto",)),
        # History without the full-text index: what indexing costs (history-on has it).
        Scenario("history-on-nosearch", replace(history, name="history-on-nosearch"),
                 {"history_enabled": True, "search": False}, ("salotto",)),
        Scenario("direct-history", DirectParams(pairs, duration_s, name="direct-history"),
                 {"history_enabled": True}, ("salotto",)),
        # The same at C=1000 (fanout-large is its history-off side).
        Scenario("fanout-large-history", FanoutParams(big, senders, duration_s, name="fanout-large-history"),
                 {"history_enabled": True}, ("salotto",)),
        # History on PostgreSQL instead of SQLite (history-off is its yardstick).
        Scenario("history-on-postgresql", replace(history, name="history-on-postgresql"), {"history_enabled": True},
                 ("salotto",), postgresql=True),
    ]


def _run_one(scenario: Scenario, server: RunningServer, workers: int) -> dict[str, Any]:
    spec = server.spec
    target = Target("127.0.0.1", server.port, server.pid, spec.name)
    gen = GeneratorParams(workers=workers, inflight=spec.connect_inflight)
    params = scenario.params
    if isinstance(params, FanoutParams):
        return run_fanout(target, params, gen)
    if isinstance(params, ConnectParams):
        capped = params.clients if spec.max_clients is None else min(params.clients, spec.max_clients)
        record = run_connect(target, replace(params, clients=capped), gen)
        record["capped"] = capped < params.clients
        return record
    if isinstance(params, CrowdParams):
        wanted = params.clients if params.clients is not None else default_crowd_clients()
        capped = wanted if spec.max_clients is None else min(wanted, spec.max_clients)
        if params.clients is None and spec.crowd_clients is not None:
            capped = min(capped, spec.crowd_clients)
        record = run_crowd(target, replace(params, clients=capped), gen)
        record["capped"] = capped < wanted
        return record
    return run_direct(target, params, gen)


def _ensure_installed(names: list[str], install: bool) -> list[ServerSpec]:
    ready = []
    for name in names:
        spec = SERVERS[name]
        if spec.executable() is None and install:
            _log(f"installing {name}")
            try:
                spec.install()
            except ServerError as exc:
                _log(f"cannot install {name}: {exc}")
        if spec.executable() is None:
            _log(f"skipping {name}: not installed")
            continue
        ready.append(spec)
    return ready


def _log(text: str) -> None:
    print(f"run-peers: {text}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run-peers", description=__doc__)
    names = ", ".join(SERVERS)
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from: {names}")
    runnable = [s.name for s in scenarios(1, 1, False)]
    parser.add_argument("--scenarios", default=",".join(runnable), help="comma-separated scenario names")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario per server (medians)")
    parser.add_argument(
        "--interleave", action="store_true",
        help="run every chosen scenario once per repeat (on, off, on, off...) instead of all repeats of one "
        "scenario in a row, so that a slow minute on a shared machine hits both sides of a comparison",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic per run")
    parser.add_argument("--connect-clients", type=int, default=10_000, help="idle clients in 'connect'")
    parser.add_argument(
        "--crowd-clients", type=int,
        help="members of #lobby in 'crowd' (default: as many as the open-file limit allows, at most 100,000; "
        "ngircd 5,000, miniircd 1,000)",
    )
    parser.add_argument("--workers", type=int, default=default_workers(), help="load generator processes")
    parser.add_argument("--small", action="store_true", help="tiny sizes, about a second each (smoke test)")
    parser.add_argument("--no-install", action="store_true", help="skip servers that are not installed")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines table to append to")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="Markdown file to update")
    parser.add_argument("--no-docs", action="store_true", help="don't touch the docs")
    parser.add_argument("--report-only", action="store_true", help="rewrite the docs from the results table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # On SIGTERM unwind like on Ctrl-C, so that the running server is stopped (finally) and not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.report_only:
        write_report(args.results, args.docs)
        return 0
    table = {s.name: s for s in scenarios(args.duration, args.connect_clients, args.small, args.crowd_clients)}
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen + args.servers.split(",") if name not in table and name not in SERVERS]
    if unknown:
        _log(f"unknown scenario or server: {', '.join(unknown)}")
        return 2
    selected = [table[name] for name in chosen]
    raise_nofile_limit()  # servers inherit it
    specs = _ensure_installed([name for name in args.servers.split(",") if name], not args.no_install)
    versions = {spec.name: spec.version() for spec in specs}
    run_id = time.strftime("%Y%m%dT%H%M%S")
    command = " ".join(["bench/run-peers", *(argv if argv is not None else sys.argv[1:])])
    failures = 0
    postgres = None
    if any(scenario.postgresql for scenario in selected):
        from tests.postgres import start_postgres

        postgres = start_postgres(durable=True)  # fsync on, as a real server has it
    try:
        failures = _run_all(args, selected, specs, versions, run_id, command, postgres)
    finally:
        if postgres is not None:
            postgres.stop()
    if not args.no_docs:
        write_report(args.results, args.docs)
        _log(f"wrote {args.docs}")
    return 1 if failures else 0


def _run_all(args: argparse.Namespace, selected: list[Scenario], specs: list[ServerSpec], versions: dict[str, str],
             run_id: str, command: str, postgres: PostgresServer | None) -> int:
    failures = 0
    if args.interleave:
        order = [(scenario, repeat) for repeat in range(args.repeat) for scenario in selected]
    else:
        order = [(scenario, repeat) for scenario in selected for repeat in range(args.repeat)]
    for scenario, repeat in order:
        for spec in specs:
            if scenario.only and spec.name not in scenario.only:
                continue
            _log(f"{scenario.name} #{repeat + 1} on {spec.name}")
            record = _measure(scenario, spec, args.workers, postgres)
            failures += "error" in record
            record.update(run_id=run_id, repeat=repeat, command=command)
            record["server_version"] = versions[spec.name]
            emit(record, args.results)
    return failures


def _measure(scenario: Scenario, spec: ServerSpec, workers: int, postgres: PostgresServer | None) -> dict[str, Any]:
    extra = dict(scenario.salotto_config) if spec.name == "salotto" else {}
    database = None
    if scenario.postgresql and postgres is not None:
        database = postgres.create_database()
        extra.update(storage_backend="postgresql", storage_url=postgres.url(database))
    try:
        server = start_server(spec, extra)
    except ServerError as exc:
        _log(str(exc))
        return {"name": scenario.name, "server": spec.name, "error": str(exc)}
    try:
        return _run_one(scenario, server, workers)
    except BenchError as exc:
        tail = server.log_tail()
        _log(f"{scenario.name} on {spec.name} failed: {exc}\n{tail}")
        return {"name": scenario.name, "server": spec.name, "error": f"{exc}\n{tail}"}
    finally:
        server.stop()
        if database is not None and postgres is not None:
            postgres.drop_database(database)


if __name__ == "__main__":
    raise SystemExit(main())
