"""Command line for one scenario against one server: ``python -m bench {fanout,connect,direct,crowd} --port P``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.scenarios import (
    BenchError,
    ConnectParams,
    CrowdParams,
    DirectParams,
    FanoutParams,
    GeneratorParams,
    Target,
    emit,
    run_connect,
    run_crowd,
    run_direct,
    run_fanout,
)
from bench.stats import find_listener_pid

__all__ = ["DEFAULT_RESULTS", "default_workers", "main"]

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def default_workers() -> int:
    """One generator process per core, at least two, at most four (beyond that the server is the limit)."""
    return max(2, min(4, os.cpu_count() or 2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--server-pid", type=int, help="server process (default: found via /proc)")
    common.add_argument("--label", default="server", help="server name recorded in the results")
    common.add_argument("--name", default="", help="name of this run in the results (default: the scenario)")
    common.add_argument("--workers", type=int, default=default_workers(), help="load generator processes")
    common.add_argument("--inflight", type=int, default=10, help="registrations in flight (all workers)")
    common.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines table to append to")
    common.add_argument("--no-save", action="store_true", help="print the JSON line only")
    sub = parser.add_subparsers(dest="scenario", required=True)

    fanout = sub.add_parser("fanout", parents=[common], help="one channel, S senders, C members")
    fanout.add_argument("--clients", type=int, default=100)
    fanout.add_argument("--senders", type=int, default=10)
    fanout.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    fanout.add_argument("--rate", type=float, help="total messages/s (paced); default: as fast as accepted")
    fanout.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    fanout.add_argument("--body-bytes", type=int, default=64, help="length of each message's text")

    connect = sub.add_parser("connect", parents=[common], help="registrations/s, then RSS per idle client")
    connect.add_argument("--clients", type=int, default=10_000)

    direct = sub.add_parser("direct", parents=[common], help="private message round trips between pairs")
    direct.add_argument("--pairs", type=int, default=50)
    direct.add_argument("--duration", type=float, default=10.0)

    crowd = sub.add_parser("crowd", parents=[common], help="N members of one channel, then messages to all")
    crowd.add_argument(
        "--clients", type=int, help="members (default: what the open-file limit allows, at most 100,000)"
    )
    crowd.add_argument("--messages", type=int, default=10, help="messages to the channel, one at a time")
    crowd.add_argument("--channel", default="#lobby")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    pid = args.server_pid
    if pid is None and args.host.startswith("127."):
        pid = find_listener_pid(args.port)
    target = Target(args.host, args.port, pid, args.label)
    gen = GeneratorParams(workers=args.workers, inflight=args.inflight)
    try:
        if args.scenario == "fanout":
            params = FanoutParams(
                args.clients, args.senders, args.duration, args.rate, args.window, args.body_bytes, args.name
            )
            record = run_fanout(target, params, gen)
        elif args.scenario == "connect":
            record = run_connect(target, ConnectParams(args.clients, name=args.name), gen)
        elif args.scenario == "crowd":
            params = CrowdParams(args.clients, args.messages, args.channel, name=args.name)
            record = run_crowd(target, params, gen)
        else:
            record = run_direct(target, DirectParams(args.pairs, args.duration, args.name), gen)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    emit(record, None if args.no_save else args.results)
    return 0
