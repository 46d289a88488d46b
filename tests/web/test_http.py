"""The web port as plain HTTP: the page and its headers, static files, /healthz and /metrics."""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.web.conftest import WebServer, start_web_server, stop_web_server


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_page_has_csp_nosniff_and_loads_only_its_own_files(web_server: WebServer) -> None:
    status, headers, body = fetch(web_server.url)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    html = body.decode()
    assert '<script type="module" src="main.js"></script>' in html
    assert "<script>" not in html and "<style" not in html and not re.search(r"\son[a-z]+=", html)  # nothing inline
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no file from another host (works offline)"
    for name, content_type in [("main.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg")]:
        status, headers, body = fetch(web_server.url + name)
        assert status == 200 and headers["Content-Type"].startswith(content_type) and body
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_unchanged_files_revalidate_with_304_and_unknown_paths_are_404(web_server: WebServer) -> None:
    _, headers, _ = fetch(web_server.url + "app.css")
    etag = headers["ETag"]
    status, _, body = fetch(web_server.url + "app.css", headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    assert fetch(web_server.url + "nothing-here.js")[0] == 404
    assert fetch(web_server.url + "../pyproject.toml")[0] == 404
    status, headers, body = fetch(web_server.url, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, headers, _ = fetch(web_server.url + "healthz", method="DELETE")
    assert status == 405 and "GET" in headers["Allow"]


def test_healthz_says_ok(web_server: WebServer) -> None:
    status, headers, body = fetch(web_server.url + "healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Cache-Control"] == "no-store"


def _metrics(web_server: WebServer) -> dict[str, float]:
    status, headers, body = fetch(web_server.url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_count_connections_by_transport_messages_and_bytes(web_server: WebServer) -> None:
    before = _metrics(web_server)
    tcp = web_server.irc.client()
    tcp.register("metric_tcp")
    tcp.expect("366")
    with connect(web_server.ws_url, subprotocols=["text.ircv3.net"]) as ws:  # type: ignore[list-item]
        ws.send("NICK metric_ws")
        ws.send("USER metric_ws 0 * :metrics")
        while "366" not in str(ws.recv(timeout=5)):
            pass
        ws.send("PRIVMSG #lobby :counted")
        tcp.expect("PRIVMSG")
        after = _metrics(web_server)
        assert after['salotto_connections{transport="tcp"}'] == before['salotto_connections{transport="tcp"}'] + 1
        assert after['salotto_connections{transport="websocket"}'] == (
            before['salotto_connections{transport="websocket"}'] + 1)
        assert after["salotto_registered_users"] == before["salotto_registered_users"] + 2
        assert after["salotto_channels"] >= 1
        assert after["salotto_messages_received_total"] == before["salotto_messages_received_total"] + 1
        assert after["salotto_messages_delivered_total"] >= before["salotto_messages_delivered_total"] + 1
        assert after["salotto_received_bytes_total"] > before["salotto_received_bytes_total"]
        assert after["salotto_sent_bytes_total"] > before["salotto_sent_bytes_total"]
        assert after["salotto_connections_accepted_total"] == before["salotto_connections_accepted_total"] + 2
        # History goes into the database in batches, on its own thread, a moment after delivery.
        deadline = time.monotonic() + 5
        while after["salotto_history_writes_total"] < before["salotto_history_writes_total"] + 1:
            assert time.monotonic() < deadline, after
            time.sleep(0.02)
            after = _metrics(web_server)
        assert after["salotto_history_writes_total"] == before["salotto_history_writes_total"] + 1
        assert after["salotto_history_write_failures_total"] == 0
    tcp.send("QUIT :done")
    deadline = time.monotonic() + 5
    while True:
        final = _metrics(web_server)
        if final['salotto_disconnects_total{reason="quit"}'] >= before['salotto_disconnects_total{reason="quit"}'] + 1:
            break
        assert time.monotonic() < deadline, final
        time.sleep(0.05)
    for name in ("flood", "sendq", "closed", "ping_timeout"):
        assert f'salotto_disconnects_total{{reason="{name}"}}' in final
    assert "salotto_connections_refused_total" in final
    tcp.close()


def test_metrics_page_parses_as_prometheus_text_and_the_start_time_is_now(tmp_path: Path) -> None:
    """Prometheus's own parser reads every sample; the start time is exact, so uptime is never negative."""
    before = time.time()
    server = start_web_server(tmp_path)  # a server of our own: its start time is known to the second
    try:
        after = time.time()
        status, _, body = fetch(server.url + "metrics")
    finally:
        stop_web_server(server)
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    samples = [sample for family in families.values() for sample in family.samples]
    # Every sample line on the page came through the parser (a line it cannot read raises).
    lines = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    assert len(samples) == len(lines) > 10
    assert all(math.isfinite(sample.value) for sample in samples)
    assert families["salotto_connections_accepted"].type == "counter"
    assert families["salotto_connections"].type == "gauge"
    assert {s.labels["transport"] for s in families["salotto_connections"].samples} >= {"tcp", "websocket"}
    (start,) = families["salotto_start_time_seconds"].samples
    assert before - 1 <= start.value <= after + 1, (before, start.value, after)
