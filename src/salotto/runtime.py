"""Wires the layers together: listeners, the timer tick, signals, reload and graceful shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from salotto import __version__
from salotto.cli import salotto_command
from salotto.config import Config, ConfigError, bad_value, load_config, parse_host_port
from salotto.logsetup import setup_logging
from salotto.mail import send_code
from salotto.server.accounts import Accounts
from salotto.server.push import Push
from salotto.server.state import Server
from salotto.storage import StorageError, describe_storage, mask_password, storage_location
from salotto.storage.files import LocalFileStore
from salotto.storage.journal import JournalError
from salotto.storage.store import Store, open_store
from salotto.threads import ThreadOffload
from salotto.transport.files import FileService, filehost_url
from salotto.transport.flusher import Flusher
from salotto.transport.reactor import Reactor, TcpListener
from salotto.transport.stream import LISTEN_BACKLOG, IrcStreamProtocol, ProxiedStreamProtocol
from salotto.transport.tls import ServerCertificate, TlsHandshakes
from salotto.transport.web import WebListener, open_web_listeners, web_urls
from salotto.webpush import WebPushSender, load_vapid_key

__all__ = ["run", "serve_forever"]

log = logging.getLogger("salotto")

# How often timers (PING, ping and registration timeouts) are checked.
TICK_INTERVAL_S = 1.0
# Size of the server's own secret (SCRAM's fake salts for unknown accounts; see salotto.server.sasl).
SECRET_BYTES = 32
# Time given to flush ERROR lines to clients at shutdown before the process exits.
SHUTDOWN_GRACE_S = 0.5
# Keys a reload cannot apply: the listeners and the store were opened with them. (A reload re-reads the
# certificate files, from the paths the server started with.)
RESTART_KEYS = ("listen", "tls_listen", "tls_cert_file", "tls_key_file", "web_listen", "web_tls_listen", "data_dir",
                "storage_backend", "storage_url", "history_enabled", "proxy_listen", "backplane", "redis_url",
                "node_name", "webpush", "webpush_max_concurrent", "uploads", "upload_public_url",
                "search")
# An IRC listener: plain TCP ones are the reactor's, the others asyncio's.
Listener = asyncio.base_events.Server | TcpListener
# The config key of each kind of IRC listener.
_LISTEN_KEYS = {"tcp": "listen", "tls": "tls_listen", "proxy": "proxy_listen"}


async def _open_listeners(
    server: Server, config: Config, flusher: Flusher, certificate: ServerCertificate | None, reactor: Reactor
) -> list[tuple[Listener, str]]:
    """Bind every configured listener; if one fails, close those already open and raise ConfigError.

    Plain TCP connections go to ``reactor`` (salotto.transport.reactor: less memory per connection than an
    asyncio transport); TLS and PROXY-protocol ones to asyncio's transports."""
    loop = asyncio.get_running_loop()
    factories: dict[str, Callable[[], asyncio.Protocol]] = {
        "proxy": partial(ProxiedStreamProtocol, server, flusher),
    }
    plans = [(item, "tcp") for item in config.listen]
    if certificate is not None:
        # Plain TCP listeners: each connection is counted before its handshake (salotto.transport.tls).
        factories["tls"] = TlsHandshakes(server, certificate, "tls").factory(
            partial(IrcStreamProtocol, server, "tls", flusher))
        plans += [(item, "tls") for item in config.tls_listen]
    plans += [(item, "proxy") for item in config.proxy_listen]
    opened: list[tuple[Listener, str]] = []
    for item, kind in plans:
        key = _LISTEN_KEYS[kind]
        host, port = parse_host_port(item, key, config.origin(key))
        listener: Listener
        try:
            if kind == "tcp":
                listener = reactor.listen(host, port, LISTEN_BACKLOG)
            else:
                listener = await loop.create_server(
                    factories[kind], host, port, backlog=LISTEN_BACKLOG, reuse_address=True)
        except OSError as exc:
            for other, _ in opened:
                other.close()
            raise bad_value(key, item, f"cannot listen: {exc.strerror}", config.origin(key)) from None
        opened.append((listener, kind))
    return opened


def _announce(
    listeners: list[tuple[Listener, str]], config: Config,
    web_listeners: list[tuple[WebListener, str]],
) -> None:
    """Where the server listens and how to connect, on stdout (scripts wait for "listening on")."""
    for listener, kind in listeners:
        for sock in listener.sockets:
            addr = sock.getsockname()
            shown = f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
            label = {"tls": "IRC over TLS", "proxy": "IRC behind a proxy, PROXY protocol"}.get(kind, "IRC, plaintext")
            print(f"salotto {__version__} listening on {shown} ({label})", flush=True)
    # Only through a proxy: its address is not ours to tell.
    direct = [listener for listener, kind in listeners if kind != "proxy"]
    if direct:
        first = direct[0].sockets[0].getsockname()
        host_hint = "127.0.0.1" if first[0] in ("0.0.0.0", "::") else first[0]
        print(
            f"Connect with: {salotto_command()} gui --server {host_hint}:{first[1]} --nick YOURNAME"
            f"  (or any IRC client: /connect {host_hint} {first[1]}). Everyone lands in "
            f"{', '.join(config.autojoin) or 'no channel'}.",
            flush=True,
        )
    for url in web_urls(web_listeners):
        print(f"Web chat: {url}", flush=True)


def _server_secret(config: Config) -> bytes:
    """32 random bytes kept in ``<data_dir>/server-secret`` (mode 0600), made on first start."""
    path = os.path.join(config.data_dir, "server-secret")
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) == SECRET_BYTES:
            return secret
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _data_dir_error(config, f"cannot read {path}: {exc.strerror}") from None
    secret = os.urandom(SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
    except OSError as exc:
        raise _data_dir_error(config, f"cannot write {path}: {exc.strerror}") from None
    return secret


def _data_dir_error(config: Config, problem: Exception | str) -> ConfigError:
    """The data directory cannot be used: one line, without errno numbers. (A PostgreSQL store that cannot
    be used names storage_url instead, its password masked.)"""
    if config.storage_backend == "postgresql" and isinstance(problem, StorageError):
        return bad_value("storage_url", mask_password(config.storage_url), str(problem), config.origin("storage_url"))
    if isinstance(problem, OSError):
        why = problem.strerror or str(problem)
        if problem.filename is not None and os.fspath(problem.filename) != config.data_dir:
            why = f"{os.fspath(problem.filename)}: {why}"
        problem = why
    return bad_value("data_dir", config.data_dir, str(problem), config.origin("data_dir"))


def _check_data_dir(config: Config) -> None:
    """Refuse a data_dir that cannot be a directory, saying why (the store would fail with a bare errno);
    make it (private to the server's user) when missing: with PostgreSQL, the journals and the server
    secret are all it holds, and no database file creates it."""
    path = Path(config.data_dir)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "it" if existing == path else str(existing)
                raise _data_dir_error(config, f"{where} is a file, not a directory")
            break
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _data_dir_error(config, exc) from None


def _open_store(server: Server, config: Config, loop: asyncio.AbstractEventLoop) -> Store:
    """Open the store (with history's journals when history is on), store what a crash left in them, and
    attach history and accounts. Reads the account directory before the server serves."""
    try:
        store = open_store(config, storage_location(config), server.clock(), loop.call_soon_threadsafe,
                           journals=config.history_enabled)
    except (StorageError, JournalError, OSError) as exc:
        raise _data_dir_error(config, exc) from None
    try:
        if config.history_enabled:
            recovered = store.recover()
            if recovered:
                log.info("history: %d message%s of the last run only in the journal, now stored", recovered,
                         "" if recovered == 1 else "s")
        accounts = store.run_now(
            lambda storage: Accounts.load(storage, store, server.offload, _server_secret(config)))
    except (StorageError, JournalError, OSError) as exc:
        store.close()
        raise _data_dir_error(config, exc) from None
    except BaseException:
        store.close()
        raise
    if config.history_enabled:
        server.attach_history(store)
    server.attach_accounts(accounts)
    return store


def _open_push(server: Server, config: Config, store: Store, loop: asyncio.AbstractEventLoop) -> WebPushSender | None:
    """Web Push (config key webpush): the VAPID key (made on first start), the subscriptions on file, the
    sender; its counters join /metrics."""
    if not config.webpush or server.accounts is None:
        return None
    key = load_vapid_key(config)
    try:
        subscriptions = store.run_now(lambda storage: storage.list_push_subscriptions())
    except (StorageError, OSError) as exc:
        raise _data_dir_error(config, exc) from None
    sender = WebPushSender(lambda: server.config, key, loop.call_soon_threadsafe)
    push = Push(server, sender, subscriptions)
    server.attach_push(push)
    previous = server.extra_metrics

    def metrics() -> list[tuple[str, str, str, float]]:
        return (previous() if previous is not None else []) + push.metrics()

    server.extra_metrics = metrics
    return sender


# Descriptors kept out of the connections' budget: listeners, the database and its readers' connections,
# the journals, logs, the event loop's own, threads' wakeup pipes.
DESCRIPTOR_RESERVE = 64


def descriptor_budget(config: Config) -> int:
    """Raise the open-files soft limit to the hard one and return how many connections fit under it.

    Connections beyond the budget are refused by the server rather than left to fail somewhere (a history
    read that cannot open its database, a client accepted and dropped by the kernel): the reserve stays
    free. Warns when ``max_clients`` (and the connections that are not clients yet: TLS handshakes, the web
    port's requests) cannot all fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, wanted, exc)
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    budget = max(1, limit - DESCRIPTOR_RESERVE)
    pending = bool(config.web_listen or config.web_tls_listen or config.tls_listen)
    wanted_connections = config.max_clients + (config.max_pending_connections if pending else 0)
    if wanted_connections > budget:
        log.warning("max_clients %d%s exceed what the open-files limit %d allows: past %d connections new ones "
                    "are refused; raise the limit (ulimit -n, LimitNOFILE= in systemd) or lower max_clients",
                    config.max_clients,
                    f" (+ max_pending_connections {config.max_pending_connections})" if pending else "",
                    limit, budget)
    return budget


async def _join_cluster(node: Any, config: Config) -> None:
    """Connect the node to Redis and take the network's state; a clear error when it cannot."""
    from redis.exceptions import RedisError

    try:
        await node.start()
    except (TimeoutError, OSError, RedisError) as exc:
        await node.close()
        raise bad_value("redis_url", mask_password(config.redis_url),
                        f"cannot join the cluster: {exc or type(exc).__name__}", config.origin("redis_url")) from None
    log.info("cluster: node %s on %s", node.name, mask_password(config.redis_url))


async def run(config: Config, overrides: dict[str, Any], stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit status."""
    loop = asyncio.get_running_loop()
    node = None
    if config.backplane == "redis":
        from salotto.cluster.node import ClusterNode  # only a cluster needs the redis library

        node = ClusterNode(config)
        server = Server(config, nick_registry=node.nicks_view, channel_registry=node.channels_view,
                        backplane=node.backplane)
        server.clustered = True
        node.bind(server)
        await _join_cluster(node, config)
    else:
        server = Server(config)
    server.fd_budget = descriptor_budget(config)
    offload = ThreadOffload(loop.call_soon_threadsafe)
    server.offload = offload
    server.mailer = send_code
    _check_data_dir(config)
    try:
        store = _open_store(server, config, loop)
    except BaseException:
        offload.close()
        if node is not None:
            await node.close()
        raise
    closers: list[Callable[[], None]] = [store.close, offload.close]  # the store first: it stores what waits
    try:
        sender = _open_push(server, config, store, loop)
    except BaseException:
        for close in closers:
            close()
        if node is not None:
            await node.close()
        raise
    if sender is not None:
        closers.append(sender.close)
    if node is not None:
        await node.go_live()
    stop = stop or asyncio.Event()
    reason = ["Server shutting down"]
    certificate: ServerCertificate | None = None

    def rehash() -> str | None:
        old = server.config
        try:
            new = load_config(old.source_file, overrides)
            # What the listeners and the store were opened with stays (and says so in server.config).
            kept = {key: getattr(old, key) for key in RESTART_KEYS if getattr(new, key) != getattr(old, key)}
            applied = dataclasses.replace(new, **kept)
            # All or nothing: a certificate that cannot be loaded keeps the old configuration too.
            renewed = certificate.load(applied) if certificate is not None else None
            server.apply_config(applied)
        except (ConfigError, OSError) as exc:
            log.error("rehash failed, keeping the old configuration: %s", exc)
            return str(exc)
        if certificate is not None and renewed is not None:
            certificate.use(renewed, applied)
        if (new.log_level, new.log_format) != (old.log_level, old.log_format):
            setup_logging(new.log_level, new.log_format)
        log.info("configuration reloaded from %s", new.source_file or "command line")
        if kept:
            log.warning("%s changed in the config: only a restart applies that", ", ".join(kept))
        return None

    def on_stop_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        reason[0] = f"Server shutting down ({name})"
        log.info("received %s, shutting down", name)
        stop.set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading configuration")
        rehash()

    server.rehash_hook = rehash
    # Handlers go in before anyone can learn we listen: a signal sent right after "listening on"
    # must not meet the default action.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    listeners: list[tuple[Listener, str]] = []
    reactor: Reactor | None = None
    web_listeners: list[tuple[WebListener, str]] = []
    files: FileService | None = None
    tick_handle: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal tick_handle
        try:
            server.tick()
        except Exception:
            log.exception("internal error in the timer tick")  # our bug; the timers must go on
        finally:
            tick_handle = loop.call_later(TICK_INTERVAL_S, tick)

    try:
        # One flusher for every transport: one history commit per loop pass covers them all.
        flusher = Flusher(server, loop)
        if config.tls_listen or config.web_tls_listen:
            certificate = ServerCertificate(config)
        reactor = Reactor(server, flusher, loop)
        listeners = await _open_listeners(server, config, flusher, certificate, reactor)
        # STS names the first TLS listener's port as bound (tls_listen may ask for port 0).
        server.tls_port = next((lst.sockets[0].getsockname()[1] for lst, kind in listeners if kind == "tls"), None)
        if config.uploads and (config.web_listen or config.web_tls_listen):
            try:
                file_store = LocalFileStore(os.path.join(config.data_dir, "files"),
                                            node=(config.node_name or config.server_name) if node is not None else "")
            except OSError as exc:
                raise _data_dir_error(config, exc) from None
            files = FileService(server, file_store, loop)
        web_listeners = await open_web_listeners(server, config, flusher, certificate, reactor, files)
        if files is not None and web_listeners:
            urls = web_urls(web_listeners)
            files.fallback_base = urls[0].rstrip("/")
            filehost = filehost_url(config.upload_public_url, urls)
            server.set_filehost(filehost)
            if not config.upload_public_url and any(
                    item.rpartition(":")[0].strip("[]") in ("0.0.0.0", "::", "")
                    for item in config.web_listen + config.web_tls_listen):
                log.warning("uploads: FILEHOST is %s, which only this machine can reach; set upload_public_url "
                            "to the address others open the web chat at", filehost)
            files.start_sweeps()
        _announce(listeners, config, web_listeners)
        log.info("data in %s (%s), history %s", config.data_dir, describe_storage(config),
                 "on" if server.history is not None else "off")
        tick_handle = loop.call_later(TICK_INTERVAL_S, tick)
        await stop.wait()
        for listener, _ in listeners:
            listener.close()
        for web_listener, _ in web_listeners:
            web_listener.close()
        server.shutdown(reason[0])
        await asyncio.sleep(SHUTDOWN_GRACE_S)
    finally:
        if node is not None:
            await node.close()  # first: the other nodes see our users go now
        if files is not None:
            files.close()
        for close in closers:
            close()
        if tick_handle is not None:
            tick_handle.cancel()
        for listener, _ in listeners:
            listener.close()
        for web_listener, _ in web_listeners:
            web_listener.close()
        if reactor is not None:
            reactor.close()  # the plain-TCP connections still open, at once
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
        runner = uvloop.run  # type: ignore[assignment, unused-ignore]
    try:
        return runner(run(config, overrides))
    except ConfigError as exc:
        print(f"salotto: {exc}", file=sys.stderr)
        return 2
