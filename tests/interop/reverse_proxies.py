"""Debian's nginx, haproxy and Caddy in front of salotto, started by a test: configs in a temporary directory,
listening on loopback, in the foreground, stopped at the end. The configs are those docs/deploy.md shows,
with the ports filled in."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.interop.processes import require_binary, stop_process
from tests.transport.inprocess import GENEROUS_S
from tests.web.conftest import free_port

__all__ = ["caddy", "haproxy", "haproxy_web", "nginx"]


def _wait_listening(process: subprocess.Popen[bytes], port: int, host: str, log: Path, name: str) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} did not listen on {host}:{port}: {log.read_text(errors='replace')}")


NGINX_SERVER = """\
    # WebSocket upgrades pass through; plain requests (the page) close as usual.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Forwarded "";  # a client's own would contradict X-Forwarded-For
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
        }}
    }}
"""


@contextlib.contextmanager
def nginx(tmp: Path, upstream: str, listen_host: str = "127.0.0.1") -> Iterator[int]:
    """nginx proxying HTTP and WebSocket to ``upstream`` (HOST:PORT); yields the port it listens on."""
    binary = require_binary("nginx", "nginx")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    listen = f"[{listen_host}]:{port}" if ":" in listen_host else f"{listen_host}:{port}"
    # Workers switch to an unprivileged user when the master is root; the temporary directory is
    # root's alone, so they stay root there (the directive is ignored when not root).
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nerror_log {tmp}/error.log info;\npid {tmp}/nginx.pid;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {tmp}/access.log;\n"
        + "".join(f"    {kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi"))
        + NGINX_SERVER.format(listen=listen, upstream=upstream)
        + "}\n"
    )
    log = tmp / "error.log"
    with _running("nginx", [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(log), "-g",
                            "daemon off;"], tmp / "stderr.log", listen_host, port):
        yield port


@contextlib.contextmanager
def _running(name: str, args: list[str], log: Path, host: str, port: int, env: dict[str, str] | None = None
             ) -> Iterator[None]:
    """Run ``args`` (output to ``log``) until the block ends; first wait until it listens on host:port."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    try:
        _wait_listening(process, port, host, log, name)
        yield
    finally:
        stop_process(process)  # type: ignore[arg-type]


HAPROXY_CONFIG = """\
global
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend irc
    bind {listen}
    default_backend salotto

backend salotto
    server salotto {upstream} {send_proxy} check inter 2s
"""


@contextlib.contextmanager
def haproxy(tmp: Path, upstream: str, send_proxy: str = "send-proxy-v2", listen_host: str = "127.0.0.1"
            ) -> Iterator[int]:
    """haproxy in TCP mode relaying to ``upstream`` (HOST:PORT) with a PROXY header (``send-proxy`` for
    version 1, ``send-proxy-v2``); yields the port it listens on."""
    binary = require_binary("haproxy", "haproxy")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    listen = f"[{listen_host}]:{port}" if ":" in listen_host else f"{listen_host}:{port}"
    config = tmp / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(listen=listen, upstream=upstream, send_proxy=send_proxy))
    with _running("haproxy", [binary, "-f", str(config), "-db"], tmp / "haproxy.log", listen_host, port):
        yield port


HAPROXY_WEB_CONFIG = """\
defaults
    mode http
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    timeout tunnel 1h

frontend web
    bind {listen}
    option forwardfor
    # A client's own Forwarded header would contradict X-Forwarded-For.
    http-request del-header Forwarded
    default_backend salotto_web

backend salotto_web
    server salotto {upstream}
"""


@contextlib.contextmanager
def haproxy_web(tmp: Path, upstream: str) -> Iterator[int]:
    """haproxy in HTTP mode in front of the web port ``upstream``, with X-Forwarded-For; yields its port."""
    binary = require_binary("haproxy", "haproxy")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp / "haproxy.cfg"
    config.write_text(HAPROXY_WEB_CONFIG.format(listen=f"127.0.0.1:{port}", upstream=upstream))
    with _running("haproxy", [binary, "-f", str(config), "-db"], tmp / "haproxy.log", "127.0.0.1", port):
        yield port


CADDYFILE = """\
{{
    admin off
    auto_https off
}}

http://127.0.0.1:{port} {{
    reverse_proxy {upstream} {{
        # A client's own Forwarded header would contradict X-Forwarded-For.
        header_up -Forwarded
    }}
}}
"""


@contextlib.contextmanager
def caddy(tmp: Path, upstream: str) -> Iterator[int]:
    """Caddy's reverse_proxy in front of the web port ``upstream`` (plain HTTP: no certificate to get
    here); yields its port. Its data and config directories are in ``tmp``."""
    binary = require_binary("caddy", "caddy")
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "data"),
           "XDG_CONFIG_HOME": str(tmp / "config")}
    # Caddy listens on every address (":port"), free_port() found the port free on 127.0.0.1 and let it go:
    # another process may take it meanwhile (CI saw it once). Then another port, twice at most.
    for attempt in range(3):
        port = free_port()
        (tmp / "Caddyfile").write_text(CADDYFILE.format(port=port, upstream=upstream))
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_running(
                    "caddy", [binary, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"],
                    tmp / "caddy.log", "127.0.0.1", port, env))
            except AssertionError as exc:
                if attempt < 2 and "address already in use" in str(exc):
                    continue
                raise
            yield port
            return
