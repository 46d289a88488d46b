"""N salotto nodes as real ``salotto serve`` processes, for the cluster's tests.

:func:`start_cluster` starts nodes ``a``, ``b``, ``c``... on free loopback ports, each with its own data
directory (``tmp_path/node-a/data``, its log ``tmp_path/node-a/server.log``), joined over one Redis
(``--backplane redis --redis-url URL --node-name X``) and sharing ONE PostgreSQL database (the
``postgres_url`` fixture gives a fresh one per test). :func:`start_nodes` is the same without the cluster's
flags (independent servers, or any flags of the test's own). Each node is a :class:`Node`: the
:class:`tests.conftest.RunningServer` that ``start_server`` returns (``port`` is its plaintext IRC port),
plus its name and its ``proxy_listen`` and web ports when it has them (``--proxy-listen 127.0.0.1:0``,
``--web-listen 127.0.0.1:0`` among the extra arguments).

:func:`kill_node` is a crash (SIGKILL); :func:`stop_cluster` a clean stop of every node still running.
"""

from __future__ import annotations

import itertools
import re
import signal
import string
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import RunningServer, start_server, stop_server

__all__ = ["Node", "cluster_args", "kill_node", "node_names", "start_cluster", "start_node", "start_nodes",
           "stop_cluster", "wait_for_log"]


# How long a clean stop may take before the node is killed.
STOP_TIMEOUT_S = 10.0


@dataclass
class Node(RunningServer):
    name: str = ""
    proxy_port: int | None = None  # the first proxy_listen port, if any
    web_port: int | None = None  # the first web_listen port, if any

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def node_names(n: int) -> list[str]:
    """``a``, ``b``, ``c``... (at most 26 nodes)."""
    if not 1 <= n <= len(string.ascii_lowercase):
        raise ValueError(f"a cluster of {n} nodes")
    return list(string.ascii_lowercase[:n])


def cluster_args(name: str, redis_url: str, postgres_url: str) -> list[str]:
    """The flags that make ``salotto serve`` node ``name`` of the cluster on ``redis_url``, storing in
    ``postgres_url``."""
    return ["--backplane", "redis", "--redis-url", redis_url, "--node-name", name,
            "--storage-backend", "postgresql", "--storage-url", postgres_url]


def _wants_web(args: Sequence[str]) -> bool:
    """Whether ``--web-listen`` in ``args`` opens a listener (start_server's own ``--web-listen ''`` does not)."""
    return any(flag == "--web-listen" and value for flag, value in itertools.pairwise(args))


def _read_announcement(server: RunningServer, web: bool) -> tuple[int | None, int | None]:
    """The proxy_listen and web ports from the rest of the start-up lines on stdout (``start_server``
    stopped reading at the first ``listening on``): more ``listening on`` lines, ``Connect with:``, then
    one ``Web chat:`` line per web listener."""
    assert server.process.stdout is not None
    proxy_port: int | None = None
    web_port: int | None = None
    seen_connect = False
    while True:
        line = server.process.stdout.readline()
        if not line:
            raise RuntimeError(f"salotto ended its start-up lines early: {server.log()}")
        match = re.search(r"listening on \S+:(\d+) \(IRC behind a proxy", line)
        if match and proxy_port is None:
            proxy_port = int(match.group(1))
        match = re.search(r"Web chat: http://\S+:(\d+)/", line)
        if match:
            return proxy_port, int(match.group(1))
        seen_connect = seen_connect or line.startswith("Connect with:")
        if seen_connect and not web:
            return proxy_port, web_port


def start_node(tmp_path: Path, name: str, *args: str, config_text: str | None = None) -> Node:
    """``salotto serve *args`` as node ``name``, in ``tmp_path/node-NAME`` (made if missing; a node
    started again with the same name finds its data directory as it left it, and starts a new log)."""
    directory = tmp_path / f"node-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    server = start_server(directory, *args, config_text=config_text)
    try:
        proxy_port, web_port = _read_announcement(server, _wants_web(args))
    except BaseException:
        stop_server(server)
        raise
    fields = {field: getattr(server, field) for field in RunningServer.__dataclass_fields__}
    return Node(**fields, name=name, proxy_port=proxy_port, web_port=web_port)


def start_nodes(tmp_path: Path, n: int, *extra: str, args_of: Callable[[str], list[str]] = lambda name: [],
                config_text: str | None = None) -> list[Node]:
    """Nodes ``a``, ``b``... one after the other, each with ``args_of(name)`` and ``extra``; if one does not
    start, those already started are stopped and the error raised."""
    nodes: list[Node] = []
    try:
        for name in node_names(n):
            nodes.append(start_node(tmp_path, name, *args_of(name), *extra, config_text=config_text))
    except BaseException:
        stop_cluster(nodes)
        raise
    return nodes


def start_cluster(tmp_path: Path, n: int, redis_url: str, postgres_url: str, *extra: str,
                  config_text: str | None = None) -> list[Node]:
    """``n`` nodes of one cluster (see the module docstring); ``extra`` goes to every node."""
    return start_nodes(tmp_path, n, *extra, args_of=lambda name: cluster_args(name, redis_url, postgres_url),
                       config_text=config_text)


def kill_node(server: RunningServer) -> None:
    """SIGKILL the node, as a crash or a pulled plug would end it (no goodbye to anyone), and wait for it."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    if server.process.stdout is not None:
        server.process.stdout.close()


def stop_cluster(nodes: Sequence[RunningServer]) -> None:
    """A clean stop (SIGTERM) of every node still running, all at once, then waits for each."""
    for node in nodes:
        if node.process.poll() is None:
            node.process.terminate()
    # Not stop_server: its own SIGTERM to a node still shutting down would be a second one, which ends it at once.
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for node in nodes:
        try:
            node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_node(node)
        if node.process.stdout is not None:
            node.process.stdout.close()


def wait_for_log(server: RunningServer, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
    """The first match of the regular expression ``pattern`` in the node's log, once it is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        match = re.search(pattern, server.log())
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the log within {timeout_s} s: {server.log()[-3000:]}")
        time.sleep(0.05)
