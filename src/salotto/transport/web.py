"""The web port: the browser client's files, IRC over WebSocket, ``/healthz`` and ``/metrics``, over
HTTP (``web_listen``) or HTTPS (``web_tls_listen``, with the IRC listeners' certificate).

Every connection starts as HTTP/1.1; :class:`~salotto.transport.websocket.WebSocketIrcProtocol`
parses the request and upgrades it, or hands it to :class:`WebService` for an answer (one request per
connection: the page is a handful of small files, so keep-alive would buy little).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import http
import importlib.resources
import math
import socket
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from salotto.config import Config, bad_value, parse_host_port
from salotto.server.state import Server
from salotto.server.stats import disconnect_category
from salotto.transport.files import UPLOAD_PATH, FileService
from salotto.transport.flusher import Flusher
from salotto.transport.reactor import Reactor, TcpListener
from salotto.transport.stream import LISTEN_BACKLOG
from salotto.transport.tls import ServerCertificate, TlsHandshakes
from salotto.transport.websocket import make_factory

__all__ = ["CONTENT_SECURITY_POLICY", "WebListener", "WebService", "open_web_listeners", "render_metrics", "web_urls"]

# A web listener: the reactor's (plain HTTP) or asyncio's (HTTPS).
WebListener = asyncio.base_events.Server | TcpListener

# Pending connections the kernel queues per web listener (as for IRC: a reconnect storm after a
# restart is every browser at once).

# The page loads only its own scripts, styles and icons (and uploaded pictures and videos, /files/ on
# its own origin), talks only to its own origin (CSP 3 lets 'self' match ws: and wss: on the same host),
# and cannot be framed. No inline script or style.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}

_TRANSPORTS: Final = ("tcp", "tls", "websocket")
# Always exported, so a dashboard shows 0 rather than no data.
_DISCONNECT_CATEGORIES: Final = ("quit", "ping_timeout", "registration_timeout", "flood", "sendq", "killed",
                                 "shutdown", "closed", "error", "other")


class _StaticFile:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _load_static() -> dict[str, _StaticFile]:
    """The web client's files, read once from the installed package (``salotto/clients/web``)."""
    files: dict[str, _StaticFile] = {}
    root = importlib.resources.files("salotto.clients").joinpath("web")
    for entry in root.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _CONTENT_TYPES:
            files["/" + entry.name] = _StaticFile(entry.read_bytes(), _CONTENT_TYPES[suffix])
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def _response(
    status: http.HTTPStatus, body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()
) -> Response:
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        *extra,
    ])
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8", [("Cache-Control", "no-store")])


class WebService:
    """Answers the web port's plain HTTP requests; decides which Origins may open the WebSocket."""

    def __init__(self, server: Server, files: FileService | None = None) -> None:
        self.server = server
        self.static = _load_static()
        self.files = files  # uploads and downloads; None: uploads are off

    def origin_allowed(self, request: Request) -> bool:
        """The page's own origin (same host and port as the request), or one listed in config.

        A request without Origin is not from a browser page, so there is no visitor to protect:
        allowed, as IRC over TCP is.
        """
        origins = request.headers.get_all("Origin")
        if not origins:
            return True
        if len(origins) > 1:
            return False
        origin = origins[0].strip().lower()
        # Read at each upgrade: a reload that takes an origin off the list applies at once.
        if any(origin == allowed.rstrip("/").lower() for allowed in self.server.config.web_allowed_origins):
            return True
        hosts = request.headers.get_all("Host")
        if len(hosts) != 1:
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == hosts[0].strip().lower()

    def respond(self, request: Request) -> Response:
        """The answer to a request that is not a WebSocket upgrade."""
        if request.path.partition("?")[0] == UPLOAD_PATH and self.files is not None:
            return self._upload_options(request, self.files)
        if request.method not in ("GET", "HEAD"):
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "Only GET and HEAD here.\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        path = request.path.partition("?")[0]
        if path == "/healthz":
            response = self._healthz()
        elif path == "/metrics":
            response = _response(http.HTTPStatus.OK, render_metrics(self.server, self.files).encode(),
                                 "text/plain; version=0.0.4; charset=utf-8", [("Cache-Control", "no-store")])
        else:
            response = self._static(path, request.headers.get_all("If-None-Match"))
        if request.method == "HEAD":
            response.body = b""
        return response

    def _upload_options(self, request: Request, files: FileService) -> Response:
        """OPTIONS /upload (soju.im/FILEHOST: what may be posted; a CORS preflight too). The POST itself
        never comes here: salotto.transport.files reads it, body and all."""
        if request.method != "OPTIONS":
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "Upload files with POST.\n")
            response.headers["Allow"] = "OPTIONS, POST"
            return response
        response = _response(http.HTTPStatus.NO_CONTENT, b"", "text/plain; charset=utf-8",
                             [("Allow", "OPTIONS, POST"), ("Accept-Post", files.accept_post()),
                              ("Cache-Control", "no-store"), *files.cors(request)])
        del response.headers["Content-Type"]
        del response.headers["Content-Length"]
        return response

    def _healthz(self) -> Response:
        if self.server.shutting_down:
            return _text(http.HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        return _text(http.HTTPStatus.OK, "ok\n")

    def _static(self, path: str, if_none_match: list[str]) -> Response:
        found = self.static.get(path)
        if found is None:
            return _text(http.HTTPStatus.NOT_FOUND, "Not found.\n")
        # no-cache: revalidate every time (the ETag makes that a 304), so an upgrade shows at once.
        extra = [("Cache-Control", "no-cache"), ("ETag", found.etag)]
        if found.content_type.startswith("text/html"):
            extra += [("Content-Security-Policy", CONTENT_SECURITY_POLICY), ("X-Frame-Options", "DENY")]
        if found.etag in if_none_match:
            response = _response(http.HTTPStatus.NOT_MODIFIED, b"", found.content_type, extra)
            del response.headers["Content-Length"]
            return response
        return _response(http.HTTPStatus.OK, found.body, found.content_type, extra)


def _sample_value(value: float) -> str:
    """A sample as Prometheus reads it back exactly: integers as such, other floats at full precision.

    (``%g`` keeps six digits: a start time of 1796580123.4 came out as 1.79658e+09, minutes off.)
    """
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def render_metrics(server: Server, files: FileService | None = None) -> str:
    """The server's counters in the Prometheus text exposition format (version 0.0.4)."""
    stats = server.stats
    by_transport = dict.fromkeys(_TRANSPORTS, 0)
    for client in server.clients:
        name = client.conn.transport_name
        by_transport[name] = by_transport.get(name, 0) + 1
    disconnects = dict.fromkeys(_DISCONNECT_CATEGORIES, 0)
    for reason, count in stats.disconnects.items():
        category = reason if reason in disconnects else disconnect_category(reason)
        disconnects[category] = disconnects.get(category, 0) + count
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        out.append(f"# HELP salotto_{name} {help_text}")
        out.append(f"# TYPE salotto_{name} {kind}")
        for labels, value in samples:
            out.append(f"salotto_{name}{labels} {_sample_value(value)}")

    family("connections", "gauge", "Open client connections by transport.",
           ((f'{{transport="{name}"}}', count) for name, count in sorted(by_transport.items())))
    family("registered_users", "gauge", "Clients that completed registration.", [("", server.registered_count)])
    family("channels", "gauge", "Channels that exist.", [("", server.channel_registry.count())])
    family("attached_devices", "gauge", "Connections attached to a user as its second (third...) device.",
           [("", server.device_count)])
    family("always_on_users", "gauge", "Users that are always-on, connected or not.", [("", server.always_on_users())])
    family("connections_accepted_total", "counter", "Connections accepted.", [("", stats.connections_accepted)])
    family("connections_refused_total", "counter", "Connections refused by a limit.",
           [("", stats.connections_refused)])
    family("descriptor_refusals_total", "counter",
           "Connections refused because the process's open-files limit had no descriptor to spare.",
           [("", stats.descriptor_refusals)])
    family("registrations_total", "counter", "Clients that completed registration.", [("", stats.registrations)])
    family("messages_received_total", "counter", "PRIVMSG, NOTICE and TAGMSG received from clients.",
           [("", stats.messages_in)])
    family("messages_delivered_total", "counter", "Copies of messages written to recipients, echoes included.",
           [("", stats.deliveries_out)])
    family("multiline_batches_total", "counter", "draft/multiline batches relayed (one message each).",
           [("", stats.multiline_batches)])
    family("multiline_refused_total", "counter", "draft/multiline batches refused (limits, timeouts, bad lines).",
           [("", stats.multiline_refused)])
    family("reactions_total", "counter", "Reactions (TAGMSG with +draft/react) received.", [("", stats.reactions)])
    family("read_markers_total", "counter", "Read markers (MARKREAD) moved forward.", [("", stats.read_markers)])
    family("redactions_total", "counter", "Messages deleted by REDACT (draft/message-redaction).",
           [("", stats.redactions)])
    family("received_bytes_total", "counter", "Bytes received from clients.", [("", stats.bytes_in)])
    family("sent_bytes_total", "counter", "Bytes written to clients.", [("", stats.bytes_out)])
    family("disconnects_total", "counter", "Disconnections by reason.",
           ((f'{{reason="{name}"}}', count) for name, count in sorted(disconnects.items())))
    history = server.history
    family("history_writes_total", "counter", "Messages stored in history.",
           [("", history.written if history is not None else 0)])
    family("history_write_failures_total", "counter", "Messages that could not be stored (disk full...).",
           [("", history.failed_writes if history is not None else 0)])
    family("internal_errors_total", "counter", "Commands that failed with an internal error.",
           [("", server.internal_errors)])
    family("start_time_seconds", "gauge", "When the server started, in seconds since the Unix epoch.",
           [("", float(server.created))])
    if files is not None:
        family("uploads_total", "counter", "Files uploaded (POST /upload answered 201).", [("", files.stored)])
        family("upload_bytes_total", "counter", "Bytes of the files uploaded.", [("", files.stored_bytes)])
        family("uploads_refused_total", "counter", "Uploads answered with an error (limits, login, type...).",
               [("", files.refused)])
        family("uploads_in_progress", "gauge", "Uploads whose body is being received.", [("", files.uploading.total)])
        family("uploads_expired_total", "counter", "Files deleted by retention (upload_retention_days).",
               [("", files.swept)])
    if server.extra_metrics is not None:
        for name, kind, help_text, value in server.extra_metrics():
            family(name, kind, help_text, [("", value)])
    return "\n".join(out) + "\n"


async def open_web_listeners(
    server: Server, config: Config, flusher: Flusher, certificate: ServerCertificate | None = None,
    reactor: Reactor | None = None, files: FileService | None = None,
) -> list[tuple[WebListener, str]]:
    """Bind every ``web_listen`` (HTTP) and ``web_tls_listen`` (HTTPS, with ``certificate``) address, as
    (listener, scheme) pairs; if one fails, close those already open and raise ConfigError.

    Pass the IRC listeners' ``flusher`` so that one history commit per loop pass covers both. Both kinds
    share one protocol factory: the limits on pending web connections count them together. With a
    ``reactor`` (salotto.transport.reactor), the plain HTTP listeners are its: less memory per
    connection than asyncio's transports; HTTPS stays on asyncio's TLS.
    """
    plans = [(item, "web_listen") for item in config.web_listen]
    if certificate is not None:
        plans += [(item, "web_tls_listen") for item in config.web_tls_listen]
    if not plans:
        return []
    loop = asyncio.get_running_loop()
    factory = make_factory(server, WebService(server, files), flusher)
    factories: dict[str, Callable[[], asyncio.Protocol]] = {"web_listen": factory}
    if certificate is not None:
        # Plain TCP too: each connection is counted before its handshake (salotto.transport.tls).
        factories["web_tls_listen"] = TlsHandshakes(server, certificate, "https").factory(factory)
    opened: list[tuple[WebListener, str]] = []
    for item, key in plans:
        origin = config.origin(key)
        host, port = parse_host_port(item, key, origin)
        listener: WebListener
        try:
            if key == "web_listen" and reactor is not None:
                listener = reactor.listen(host, port, LISTEN_BACKLOG, factory)
            else:
                listener = await loop.create_server(
                    factories[key], host, port, backlog=LISTEN_BACKLOG, reuse_address=True)
        except OSError as exc:
            for other, _ in opened:
                other.close()
            raise bad_value(key, item, f"cannot listen: {exc.strerror}", origin) from None
        opened.append((listener, "http" if key == "web_listen" else "https"))
    return opened


def web_urls(listeners: Iterable[tuple[WebListener, str]]) -> list[str]:
    """The address to open in a browser for each web listener (127.0.0.1 for a wildcard one)."""
    urls = []
    for listener, scheme in listeners:
        for sock in listener.sockets:
            host, port = sock.getsockname()[:2]
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
            shown = f"[{host}]" if ":" in host else host
            urls.append(f"{scheme}://{shown}:{port}/")
    return urls
