"""The cluster harness (tests/cluster/harness.py) on plain, independent salotto nodes: the cluster's own
flags are the core's (tests of the core start real clusters with it); here, that nodes a, b... each run in
a data directory and log of their own on ports of their own, that a crash (kill_node) ends one node and
not the others, and that stop_cluster stops them all."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.cluster.harness import cluster_args, kill_node, node_names, start_nodes, stop_cluster, wait_for_log


def test_nodes_have_their_own_names_directories_logs_and_ports(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, 3, "--proxy-listen", "127.0.0.1:0", "--trusted-proxies", "127.0.0.1",
                        "--web-listen", "127.0.0.1:0")
    try:
        assert [node.name for node in nodes] == ["a", "b", "c"]
        assert [node.data_dir for node in nodes] == [tmp_path / f"node-{n}" / "data" for n in "abc"]
        assert all(node.data_dir.is_dir() for node in nodes)
        ports = [p for node in nodes for p in (node.port, node.proxy_port, node.web_port)]
        assert None not in ports and len(set(ports)) == 9
        for node in nodes:
            client = node.client()
            client.register(f"user{node.name}")
            client.close()
        for node in nodes:
            wait_for_log(node, rf"registered user{node.name}!")
            assert "registered" not in node.log().replace(f"registered user{node.name}!", "")
    finally:
        stop_cluster(nodes)
    assert [node.process.returncode for node in nodes] == [0, 0, 0], [node.log() for node in nodes]
    assert all("stopped" in node.log() for node in nodes)


def test_without_a_web_listener_there_is_no_web_port(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, 1)
    try:
        assert nodes[0].web_port is None and nodes[0].proxy_port is None
        client = nodes[0].client()
        client.register("solo")
        client.close()
    finally:
        stop_cluster(nodes)


def test_kill_node_is_a_crash_of_that_node_only(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, 2)
    try:
        a, b = nodes
        kill_node(a)
        assert not a.alive and a.process.returncode == -signal.SIGKILL
        assert "stopped" not in a.log()  # no clean shutdown
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((a.host, a.port), timeout=5).close()
        assert b.alive
        client = b.client()
        client.register("survivor")
        client.close()
    finally:
        stop_cluster(nodes)


def test_a_node_that_cannot_start_stops_the_ones_already_started(tmp_path: Path) -> None:
    started: list[str] = []

    def args_of(name: str) -> list[str]:
        started.append(name)
        return ["--storage-backend", "no-such-backend"] if name == "b" else []

    with pytest.raises(RuntimeError, match="salotto did not start"):
        start_nodes(tmp_path, 2, args_of=args_of)
    assert started == ["a", "b"]
    # Node a was up and is stopped again: its log ends with a clean stop.
    assert (tmp_path / "node-a" / "server.log").read_text().rstrip().endswith("stopped")


def test_names_and_cluster_flags() -> None:
    assert node_names(3) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        node_names(27)
    assert cluster_args("b", "redis://127.0.0.1:7000/0", "postgresql://u:p@127.0.0.1:5432/d") == [
        "--backplane", "redis", "--redis-url", "redis://127.0.0.1:7000/0", "--node-name", "b",
        "--storage-backend", "postgresql", "--storage-url", "postgresql://u:p@127.0.0.1:5432/d"]
