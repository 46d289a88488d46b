"""Measurements: a mergeable latency histogram and the server's CPU time and memory from /proc.

The figures that matter (server CPU seconds per million deliveries, RSS per 1,000 connections) are read
from the server process itself, so they do not depend on how fast the load generator is.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LatencyHistogram",
    "cpu_seconds",
    "find_listener_pid",
    "raise_nofile_limit",
    "rss_kib",
]

# Keep 7 significant bits of each latency in microseconds: at most 1/128 (0.8 %) relative error, a few
# hundred distinct buckets, and a histogram that merges across processes by adding counts.
_KEPT_BITS = 7
_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _bucket(value_us: int) -> int:
    shift = value_us.bit_length() - _KEPT_BITS
    if shift <= 0:
        return value_us
    return (value_us >> shift) << shift


@dataclass
class LatencyHistogram:
    """Latencies in microseconds, quantized so that a histogram stays small and merges by addition."""

    counts: Counter[int] = field(default_factory=Counter)
    max_us: int = 0

    def add(self, value_us: int) -> None:
        if value_us < 0:  # clock granularity; never a real negative latency
            value_us = 0
        self.counts[_bucket(value_us)] += 1
        if value_us > self.max_us:
            self.max_us = value_us

    def merge(self, others: Iterable[LatencyHistogram]) -> None:
        for other in others:
            self.counts.update(other.counts)
            self.max_us = max(self.max_us, other.max_us)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile_ms(self, fraction: float) -> float | None:
        """The latency below which ``fraction`` of the samples fall, in milliseconds; None if empty."""
        total = self.total
        if total == 0:
            return None
        rank = fraction * total
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return bucket / 1000
        return self.max_us / 1000

    def summary(self) -> dict[str, float | None]:
        return {
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "max_ms": self.max_us / 1000 if self.counts else None,
        }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (``/proc/PID/stat`` fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS_PER_S


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def find_listener_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP ``port``, found through /proc; None if not visible."""
    inodes: set[str] = set()
    listen_state = "0A"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local_port = int(parts[1].rsplit(":", 1)[1], 16)
            if local_port == port and parts[3] == listen_state:
                inodes.add(parts[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return int(entry.name)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def raise_nofile_limit() -> int:
    """Raise the soft limit on open files to the hard limit (children inherit it); return the new limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft
