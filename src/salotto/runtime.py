"""Wires the layers together: listeners, the timer tick, signals, reload and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

from salotto import __version__
from salotto.config import Config, ConfigError, load_config, parse_host_port
from salotto.server.state import Server
from salotto.transport.stream import IrcStreamProtocol

__all__ = ["run", "serve_forever"]

log = logging.getLogger("salotto")

# Pending connections the kernel queues per listener; a connect storm of thousands needs more
# than Python's default of 100.
LISTEN_BACKLOG = 4096
# How often timers (PING, ping and registration timeouts) are checked.
TICK_INTERVAL_S = 1.0
# Time given to flush ERROR lines to clients at shutdown before the process exits.
SHUTDOWN_GRACE_S = 0.5


def _tls_context(config: Config) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"config key 'tls_cert_file': bad value {config.tls_cert_file!r} with tls_key_file "
            f"{config.tls_key_file!r} ({exc})"
        ) from None
    return context


async def run(config: Config, overrides: dict[str, Any], stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit status."""
    loop = asyncio.get_running_loop()
    server = Server(config)
    stop = stop or asyncio.Event()

    def rehash() -> str | None:
        try:
            new = load_config(config.source_file, overrides)
        except (ConfigError, OSError) as exc:
            log.error("rehash failed, keeping the old configuration: %s", exc)
            return str(exc)
        server.apply_config(new)
        log.info("configuration reloaded from %s", new.source_file or "command line")
        return None

    server.rehash_hook = rehash
    listeners: list[asyncio.base_events.Server] = []
    plans: list[tuple[str, str, ssl.SSLContext | None]] = [(item, "tcp", None) for item in config.listen]
    if config.tls_listen:
        context = _tls_context(config)
        plans += [(item, "tls", context) for item in config.tls_listen]
    for item, kind, context in plans:
        host, port = parse_host_port(item, "listen" if kind == "tcp" else "tls_listen")
        factory: Callable[[], IrcStreamProtocol] = lambda kind=kind: IrcStreamProtocol(server, kind)  # noqa: E731
        try:
            listener = await loop.create_server(
                factory, host, port, ssl=context, backlog=LISTEN_BACKLOG, reuse_address=True
            )
        except OSError as exc:
            key = "listen" if kind == "tcp" else "tls_listen"
            raise ConfigError(f"config key {key!r}: bad value {item!r} (cannot listen: {exc.strerror})") from None
        listeners.append(listener)
        for sock in listener.sockets:
            addr = sock.getsockname()
            shown = f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
            label = "IRC over TLS" if kind == "tls" else "IRC, plaintext"
            print(f"salotto {__version__} listening on {shown} ({label})", flush=True)
    first = listeners[0].sockets[0].getsockname()
    host_hint = "127.0.0.1" if first[0] in ("0.0.0.0", "::") else first[0]
    print(
        f"Connect with: salotto gui --server {host_hint}:{first[1]} --nick YOURNAME"
        f"  (or any IRC client: /connect {host_hint} {first[1]}). Everyone lands in "
        f"{', '.join(config.autojoin) or 'no channel'}.",
        flush=True,
    )

    def tick() -> None:
        server.tick()
        tick_handle[0] = loop.call_later(TICK_INTERVAL_S, tick)

    tick_handle = [loop.call_later(TICK_INTERVAL_S, tick)]
    reason_box = ["Server shutting down"]

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        reason_box[0] = f"Server shutting down ({name})"
        log.info("received %s, shutting down", name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, lambda: (log.info("SIGHUP: reloading configuration"), rehash()))
    try:
        await stop.wait()
    finally:
        tick_handle[0].cancel()
        for listener in listeners:
            listener.close()
        server.shutdown(reason_box[0])
        await asyncio.sleep(SHUTDOWN_GRACE_S)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


def serve_forever(config: Config, overrides: dict[str, Any]) -> int:
    """Run the event loop (uvloop when installed) until the server stops."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run  # type: ignore[assignment]
    try:
        return runner(run(config, overrides))
    except ConfigError as exc:
        print(f"salotto: {exc}", file=sys.stderr)
        return 2
