"""File uploads (``POST /upload``, soju.im/FILEHOST) and downloads (``GET``/``HEAD /files/<id>/<name>``) on the
web port. docs/files.md tells the contract; the pieces:

* :class:`Upload` takes a web connection over once its first bytes say ``POST``: the ``websockets`` request
  parser refuses bodies, so the head is parsed here (bounded: :data:`MAX_HEAD_BYTES`), then the checks that
  need no body (``Content-Length`` required, the per-file limit, concurrent uploads), then the account
  (``Authorization: Basic``, the SASL PLAIN credentials, verified off the loop through the same login
  throttle as SASL), then the quota; only then is the body read, straight into a temporary file (never
  whole in memory), its type sniffed from its first bytes, and the file handed to the :class:`FileStore`
  with its metadata, the quota checked again in the same transaction. A body that does not arrive within
  ``upload_timeout_s`` is cut (slowloris).
* :class:`Download` serves a stored file: headers that keep the browser from rendering it as a page
  (``nosniff``, a sandboxing CSP, ``attachment`` unless it is an image, a video or audio), single byte
  ranges for video, and the body from the file in chunks with the transport's flow control.
* :class:`FileService` holds the limits' counts and sweeps expired files (``upload_retention_days``).

The temporary file is written on the loop (local disk, 64 KiB at a time); opening, moving and deleting
stored files run on the store's writer thread, with the metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import BinaryIO, Final
from urllib.parse import quote

from websockets.datastructures import Headers
from websockets.http11 import Request

from salotto.proto.filetypes import (
    INLINE_TYPES,
    OCTET_STREAM,
    SNIFF_BYTES,
    TEXT,
    content_disposition,
    filename_from_disposition,
    parse_basic,
    safe_filename,
    sniff,
)
from salotto.server.accounts import Accounts
from salotto.server.flood import ip_key
from salotto.server.state import Server
from salotto.storage.base import Storage, StoredAccount, UploadRecord
from salotto.storage.files import FILE_ID_PATTERN, FileStore, new_file_id
from salotto.storage.outcome import Outcome

__all__ = [
    "FILES_PREFIX",
    "FILE_CSP",
    "MAX_HEAD_BYTES",
    "UPLOAD_PATH",
    "Download",
    "FileService",
    "Upload",
    "filehost_url",
    "text_response",
]

log = logging.getLogger("salotto.transport")

UPLOAD_PATH: Final = "/upload"
FILES_PREFIX: Final = "/files/"
# An upload's request head (request line and headers) longer than this is refused with 431.
MAX_HEAD_BYTES: Final = 16384
# What every served file gets: nothing it holds may load, run or be framed.
FILE_CSP: Final = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
# Bytes read from a stored file per write, and written per loop pass before the others get a turn.
CHUNK_BYTES: Final = 65536
PASS_BYTES: Final = 4 * CHUNK_BYTES
# Seconds an upload's request head may take to arrive (as any request's on the web port); the body then has
# upload_timeout_s.
HEAD_TIMEOUT_S: Final = 10.0
# After an early answer (401, 413...), seconds the rest of the body is read and dropped so that the client,
# still sending, sees the answer rather than a reset; then the connection is closed.
DRAIN_TIMEOUT_S: Final = 2.0
# Ids of expired files deleted per storer job, so a large sweep does not hold the writer for long.
SWEEP_BATCH: Final = 500
# A Host header we repeat in a Location: a name or an address, and a port.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")
# A Content-Length we take: ASCII digits only, at most 18 of them.
_LENGTH: Final = re.compile(r"[0-9]{1,18}")


def filehost_url(public_url: str, web_urls: Iterable[str]) -> str | None:
    """The upload URL to advertise: under ``upload_public_url``, else under the first HTTPS web listener's
    address, else the first HTTP one's; None without a web listener."""
    if public_url:
        return public_url.rstrip("/") + UPLOAD_PATH
    urls = list(web_urls)
    chosen = next((url for url in urls if url.startswith("https:")), urls[0] if urls else None)
    return chosen.rstrip("/") + UPLOAD_PATH if chosen is not None else None


def _response(status: int, headers: Iterable[tuple[str, str]], body: bytes = b"", *,
              length: int | None = None) -> bytes:
    phrase = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}", f"Date: {email.utils.formatdate(usegmt=True)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers),
             f"Content-Length: {len(body) if length is None else length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def text_response(status: int, text: str, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    """A whole HTTP/1.1 answer with a plain-text body (then the connection closes)."""
    return _response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"),
                              ("X-Content-Type-Options", "nosniff"), *extra], text.encode())


def _parse_head(head: bytes) -> Request | None:
    """An HTTP/1.1 request head (without its blank line) as a Request; None when it is malformed."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[1].startswith(b"/"):
        return None
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # obsolete line folding included: refused
            return None
        headers[name.decode("ascii")] = value.strip(b" \t").decode("latin-1")
    try:
        return Request(parts[1].decode("ascii"), headers, parts[0].decode("ascii"), parts[2].decode("ascii"))
    except UnicodeDecodeError:
        return None


def _single(headers: Headers, name: str) -> str | None:
    """The header's value when it is there once; None when absent or repeated."""
    values = headers.get_all(name)
    return values[0] if len(values) == 1 else None


class InProgress:
    """Exchanges in progress, in all and by address (ip_key), held to a limit of each."""

    __slots__ = ("by_ip", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_ip: dict[str, int] = {}

    def admit(self, ip: str, max_total: int, max_per_ip: int, too_many: str, too_many_here: str) -> str:
        """Count one more from ``ip``; the refusal (``too_many`` or ``too_many_here``) past a limit, else ""."""
        if self.total >= max_total:
            return too_many
        key = ip_key(ip)
        if self.by_ip.get(key, 0) >= max_per_ip:
            return too_many_here
        self.total += 1
        self.by_ip[key] = self.by_ip.get(key, 0) + 1
        return ""

    def release(self, ip: str) -> None:
        self.total -= 1
        key = ip_key(ip)
        left = self.by_ip[key] - 1
        if left:
            self.by_ip[key] = left
        else:
            del self.by_ip[key]


class FileService:
    """Uploads and downloads of one server's web port: the store, the counts its limits need, the sweep."""

    def __init__(self, server: Server, store: FileStore, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.store = store
        self.loop = loop
        self.uploading = InProgress()  # uploads in progress (their head read)
        self.reserved: dict[str, int] = {}  # account name -> bytes of its uploads in progress
        self.downloading = InProgress()  # downloads in progress
        self.fallback_base = ""  # scheme://host:port of the first web listener, for a request without Host
        self._sweep: asyncio.TimerHandle | None = None
        # For /metrics, since start:
        self.swept = 0  # files deleted by retention
        self.stored = 0  # uploads taken
        self.stored_bytes = 0
        self.refused = 0  # uploads answered with an error (4xx, 5xx)

    # -- retention ---------------------------------------------------------------------------------

    def start_sweeps(self) -> None:
        self._sweep = self.loop.call_later(0, self.sweep)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def sweep(self) -> None:
        """Delete the files older than ``upload_retention_days`` and their rows (on the writer thread), then
        come again in ``upload_sweep_interval_s``."""
        config = self.server.config
        self._sweep = self.loop.call_later(config.upload_sweep_interval_s, self.sweep)
        accounts = self.server.accounts
        if not config.upload_retention_days or accounts is None or self.server.shutting_down:
            return
        cutoff = self.server.wallclock() - config.upload_retention_days * 86400
        self._sweep_batch(cutoff, accounts, 0)

    def _sweep_batch(self, cutoff: float, accounts: Accounts, deleted: int) -> None:
        """Delete one batch (SWEEP_BATCH) of expired uploads on the writer thread; a full batch posts the
        next one, so a backlog (after downtime, or a shorter retention) never holds the writer from logins
        and history for more than one batch at a time."""
        store = self.store

        def delete_expired(storage: Storage) -> tuple[int, bool]:
            ids = storage.expired_uploads(cutoff, SWEEP_BATCH)
            for file_id in ids:
                store.delete(file_id)
            return storage.delete_uploads(ids), len(ids) == SWEEP_BATCH

        def done(outcome: Outcome[tuple[int, bool]]) -> None:
            if outcome.error is not None:
                log.error("could not delete expired uploads: %s", outcome.error)
                return
            count, more = outcome.unwrap()
            self.swept += count
            if more and not self.server.shutting_down:
                self._sweep_batch(cutoff, accounts, deleted + count)
            elif deleted + count:
                log.info("deleted %d expired upload%s", deleted + count, "" if deleted + count == 1 else "s")

        accounts.write(delete_expired, done)

    # -- counts --------------------------------------------------------------------------------

    def admit(self, ip: str) -> str:
        """Count an upload from ``ip`` starting; why it may not ("" if it may)."""
        config = self.server.config
        return self.uploading.admit(
            ip, config.upload_max_concurrent, config.upload_max_concurrent_per_ip,
            "Too many uploads in progress on this server; try again shortly.",
            "Too many uploads in progress from your address; wait for one to finish.")

    def admit_download(self, ip: str) -> str:
        """Count a download from ``ip`` starting; why it may not ("" if it may). A download holds its place
        among the pending connections while it lasts: these limits keep downloads from taking them all."""
        config = self.server.config
        return self.downloading.admit(
            ip, config.download_max_concurrent, config.download_max_concurrent_per_ip,
            "Too many downloads in progress on this server (download_max_concurrent); try again shortly.",
            "Too many downloads in progress from your address; wait for one to finish.")

    def reserve(self, account: str, size: int) -> None:
        self.reserved[account] = self.reserved.get(account, 0) + size

    def unreserve(self, account: str, size: int) -> None:
        left = self.reserved.get(account, 0) - size
        if left > 0:
            self.reserved[account] = left
        else:
            self.reserved.pop(account, None)

    def accept_post(self) -> str:
        """The Accept-Post of OPTIONS /upload: the types upload_types lets in."""
        types = self.server.config.upload_types
        return "*/*" if OCTET_STREAM in types else ", ".join(types)

    def cors(self, request: Request) -> list[tuple[str, str]]:
        """CORS headers for a request from a page of another origin listed in web_allowed_origins (a web
        client served elsewhere uploads here); none for others (the page's own origin needs none)."""
        origins = request.headers.get_all("Origin")
        if len(origins) != 1:
            return []
        origin = origins[0].strip()
        allowed = {item.rstrip("/").lower() for item in self.server.config.web_allowed_origins}
        if origin.lower() not in allowed:
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Disposition"),
                ("Access-Control-Expose-Headers", "Location"), ("Access-Control-Allow-Methods", "OPTIONS, POST")]

    def base_url(self, request: Request, tls: bool) -> str:
        """Where the Location of a new file points: upload_public_url, else the host the request came to."""
        public = self.server.config.upload_public_url
        if public:
            return public.rstrip("/")
        hosts = request.headers.get_all("Host")
        if len(hosts) == 1 and _HOST.fullmatch(hosts[0].strip()):
            return f"{'https' if tls else 'http'}://{hosts[0].strip()}"
        return self.fallback_base


class Upload:
    """One ``POST /upload`` connection, from its first byte to its answer (one request per connection)."""

    # States.
    HEAD, CHECKING, BODY, STORING, DRAINING, DONE = range(6)

    def __init__(self, service: FileService, transport: asyncio.Transport, socket_ip: str,
                 client_ip: Callable[[Request], str | None]) -> None:
        self.service = service
        self.transport = transport
        self.ip = socket_ip
        self._client_ip = client_ip
        self.state = Upload.HEAD
        self._head = bytearray()
        self._early = bytearray()  # body bytes that came while the account was checked (reading paused)
        self._admitted = False
        self._account: StoredAccount | None = None
        self._reserved = 0
        self._size = 0
        self._remaining = 0  # body bytes still to come
        self._name = "file"
        self._type = ""
        self._sniffed = bytearray()
        self._file: BinaryIO | None = None
        self._temp: str | None = None
        self._request: Request | None = None
        self._cors: list[tuple[str, str]] = []
        self._timer: asyncio.TimerHandle | None = service.loop.call_later(HEAD_TIMEOUT_S, self._too_slow)

    # -- bytes in ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == Upload.BODY:
            self._body(data)
        elif state == Upload.HEAD:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD_BYTES:
                    self._answer(431, "The request's headers are too long.\n")
                return
            if end > MAX_HEAD_BYTES:
                self._answer(431, "The request's headers are too long.\n")
                return
            rest = bytes(self._head[end + 4:])
            head = bytes(self._head[:end])
            self._head = bytearray()
            self._on_head(head, rest)
        elif state == Upload.CHECKING:
            self._early += data  # a read or two at most: reading is paused
        elif state == Upload.DRAINING:
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._close()

    def eof_received(self) -> bool:
        """The client shut its side: keep the connection open (True) while the answer is still to come; a
        body cut short is answered now (its rest cannot come)."""
        if self.state == Upload.BODY:
            self._remaining = 0
            self._answer(400, "The body ended before Content-Length bytes came.\n")
            return False
        return self.state in (Upload.CHECKING, Upload.STORING)

    def connection_lost(self) -> None:
        if self.state not in (Upload.DONE, Upload.STORING):
            log.info("upload from %s abandoned", self.ip)
        self.state = Upload.DONE
        self._clean_up()

    # -- the head ----------------------------------------------------------------------------------

    def _on_head(self, head: bytes, rest: bytes) -> None:
        request = _parse_head(head)
        if request is None:
            self._answer(400, "Malformed HTTP request.\n")
            return
        self._request = request
        self._early += rest
        client = self._client_ip(request)
        if client is None:
            self._answer(400, "The proxy's forwarding headers (Forwarded, X-Forwarded-For) don't name the client.\n")
            return
        self.ip = client
        service = self.service
        self._cors = service.cors(request)
        if self._timer is not None:  # the head is in: the body has upload_timeout_s from now
            self._timer.cancel()
        self._timer = service.loop.call_later(service.server.config.upload_timeout_s, self._too_slow)
        config = service.server.config
        headers = request.headers
        path = request.path.partition("?")[0]
        if path != UPLOAD_PATH:  # as the web port answers any other method elsewhere
            self._answer(405, f"Only GET and HEAD here; files are uploaded to {UPLOAD_PATH}.\n",
                         [("Allow", "GET, HEAD")])
            return
        if "Transfer-Encoding" in headers:
            self._answer(411, "Send the file with a Content-Length (chunked uploads are not supported).\n")
            return
        lengths = {value.strip() for value in headers.get_all("Content-Length")}
        if not lengths:
            self._answer(411, "Content-Length required.\n")
            return
        if len(lengths) > 1 or not _LENGTH.fullmatch(next(iter(lengths))):  # (not isdigit: "²" is a digit to it)
            self._answer(400, "Bad Content-Length.\n")
            return
        size = int(next(iter(lengths)))
        self._remaining = size
        if size == 0:
            self._answer(400, "The file is empty.\n")
            return
        if size > config.upload_max_file_bytes:
            self._answer(413, f"The file is too big: {size} bytes, the limit is {config.upload_max_file_bytes}.\n")
            return
        if any(value.strip().lower().startswith("multipart/") for value in headers.get_all("Content-Type")):
            self._answer(415, "Send the file's bytes as the body, not a form (multipart/form-data).\n")
            return
        expect = [value.strip().lower() for value in headers.get_all("Expect")]
        if expect and expect != ["100-continue"]:
            self._answer(417, "Only Expect: 100-continue is understood.\n")
            return
        refused = service.admit(self.ip)
        if refused:
            self._answer(503, refused + "\n", [("Retry-After", "10")])
            return
        self._admitted = True
        credentials = parse_basic(_single(headers, "Authorization"))
        accounts = service.server.accounts
        if credentials is None or accounts is None:
            self._unauthorized("Log in: Authorization: Basic with your account name and password.\n")
            return
        name, password = credentials
        wait = accounts.throttle_ip(service.server, self.ip, name)
        if wait:
            self._answer(429, f"Too many login attempts; try again in {wait:.0f} seconds.\n",
                         [("Retry-After", str(max(1, round(wait))))])
            return
        self._size = size
        self._name = safe_filename(filename_from_disposition(_single(headers, "Content-Disposition")))
        self.state = Upload.CHECKING
        self.transport.pause_reading()
        accounts.check_password(name, password, self._checked)

    def _unauthorized(self, text: str) -> None:
        self._answer(401, text, [("WWW-Authenticate", 'Basic realm="salotto", charset="UTF-8"')])

    def _checked(self, account: StoredAccount | None) -> None:
        if self.state != Upload.CHECKING:
            return  # gone meanwhile
        server = self.service.server
        accounts = server.accounts
        assert accounts is not None
        if account is None:
            log.info("failed upload login by %s", self.ip)
            self._unauthorized("Invalid account name or password.\n")
            return
        if not account.verified:
            self._unauthorized("The account is not verified yet.\n")
            return
        accounts.succeeded_ip(server, self.ip, account.name, refund_address=True)
        self._account = account
        accounts.write(lambda storage: storage.upload_usage(account.name), self._usage)

    def _usage(self, outcome: Outcome[int]) -> None:
        if self.state != Upload.CHECKING:
            return
        account = self._account
        assert account is not None
        if outcome.error is not None:
            log.error("could not read the upload usage of %s: %s", account.name, outcome.error)
            self._answer(503, "The server cannot take files right now.\n", [("Retry-After", "60")])
            return
        service = self.service
        quota = service.server.config.upload_max_account_bytes
        used = (outcome.value or 0) + service.reserved.get(account.name, 0)
        if used + self._size > quota:
            self._answer(413, f"Your files use {used} of your {quota} bytes; this one ({self._size} bytes) does not "
                              "fit. Old files are deleted as they expire.\n")
            return
        try:
            self._file, self._temp = service.store.temp_file()
        except OSError as exc:
            log.error("cannot create a temporary file for an upload: %s", exc)
            self._answer(507, "The server has no room for the file.\n")
            return
        service.reserve(account.name, self._size)
        self._reserved = self._size
        self.state = Upload.BODY
        assert self._request is not None
        if self._request.headers.get_all("Expect"):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        early = bytes(self._early)
        self._early = bytearray()
        self.transport.resume_reading()
        if early:
            self._body(early)

    # -- the body --------------------------------------------------------------------------------

    def _body(self, data: bytes) -> None:
        if len(data) > self._remaining:
            data = data[: self._remaining]  # what follows the body is not ours to read (one request)
        self._remaining -= len(data)
        if not self._type:
            self._sniffed += data[:SNIFF_BYTES]
            if len(self._sniffed) >= SNIFF_BYTES or not self._remaining:
                self._type = sniff(bytes(self._sniffed[:SNIFF_BYTES]), whole=not self._remaining)
                self._sniffed = bytearray()
                if self._type not in self.service.server.config.upload_types:
                    self._answer(415, f"Files of this type ({self._type}) are not taken here.\n")
                    return
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            log.error("cannot write an upload's temporary file: %s", exc)
            self._answer(507, "The server has no room for the file.\n")
            return
        if not self._remaining:
            self._store()

    def _store(self) -> None:
        self.state = Upload.STORING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._file is not None and self._temp is not None and self._account is not None
        self._file.close()
        self._file = None
        temp, self._temp = self._temp, None
        service = self.service
        server = service.server
        record = UploadRecord(new_file_id(), self._account.name, self._name, self._type, self._size,
                              server.wallclock())
        quota = server.config.upload_max_account_bytes
        store = service.store

        def keep(storage: Storage) -> bool:
            try:
                store.put(record.id, temp)
                if storage.add_upload(record, quota):
                    return True
                store.delete(record.id)
            except BaseException:
                store.delete(record.id)
                raise
            finally:
                if os.path.exists(temp):
                    os.unlink(temp)
            return False

        accounts = server.accounts
        assert accounts is not None
        accounts.write(keep, lambda outcome: self._stored(record, outcome))

    def _stored(self, record: UploadRecord, outcome: Outcome[bool]) -> None:
        if outcome.error is not None:
            log.error("could not store an upload of %s: %s", record.account, outcome.error)
            self._answer(507, "The server could not store the file.\n")
            return
        if not outcome.value:
            self._answer(413, "The file does not fit in your quota.\n")
            return
        log.info("upload by %s (%s): %s, %s, %d bytes", record.account, self.ip, record.id, record.content_type,
                 record.size)
        assert self._request is not None
        tls = self.transport.get_extra_info("ssl_object") is not None
        base = self.service.base_url(self._request, tls)
        location = f"{base}{FILES_PREFIX}{record.id}/{quote(record.name, safe='')}"
        self.service.stored += 1
        self.service.stored_bytes += record.size
        self._answer(201, location + "\n", [("Location", location)])

    # -- the answer ------------------------------------------------------------------------------

    def _answer(self, status: int, text: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        """Send the answer and end: the body not read yet is read and dropped first (closing with unread
        bytes would reset the connection under the answer), for DRAIN_TIMEOUT_S at most."""
        if self.state == Upload.DONE:
            return
        if status >= 400:
            self.service.refused += 1
        body_left = self.state in (Upload.HEAD, Upload.CHECKING, Upload.BODY) and self._remaining > 0
        was_checking = self.state == Upload.CHECKING
        self._clean_up()
        if self.transport.is_closing():
            self.state = Upload.DONE
            return
        self.transport.write(text_response(status, text, [*extra, *self._cors]))
        if was_checking:
            self.transport.resume_reading()
        if body_left:
            self._remaining -= len(self._early)
            self._early = bytearray()
            # A client that declared far more than it may send is not read for long.
            self._remaining = min(self._remaining, 2 * self.service.server.config.upload_max_file_bytes)
            if self._remaining > 0:
                self.state = Upload.DRAINING
                self._timer = self.service.loop.call_later(
                    min(DRAIN_TIMEOUT_S, self.service.server.config.upload_timeout_s), self._close)
                return
        self._close()

    def _close(self) -> None:
        self.state = Upload.DONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport.close()

    def _too_slow(self) -> None:
        self._timer = None
        if self.state == Upload.DRAINING or self.state == Upload.STORING:
            if self.state == Upload.DRAINING:
                self._close()
            return
        log.info("upload from %s cut: not done within upload_timeout_s", self.ip)
        self._remaining = 0  # nothing more is read
        self._answer(408, "The upload took too long.\n")

    def _clean_up(self) -> None:
        """Release what this upload holds: its counts, its reservation, its temporary file."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        service = self.service
        if self._admitted:
            self._admitted = False
            service.uploading.release(self.ip)
        if self._reserved and self._account is not None:
            service.unreserve(self._account.name, self._reserved)
            self._reserved = 0
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)
            self._temp = None
        if self.state != Upload.STORING:
            self.state = Upload.DONE


class Download:
    """One ``GET`` or ``HEAD`` of ``/files/<id>/<name>``: the file's metadata and file are looked up on the
    writer thread, then the body goes out in chunks as fast as the peer takes it (``pause_writing`` /
    ``resume_writing``); a peer that takes nothing for ``upload_timeout_s`` is cut."""

    def __init__(self, service: FileService, transport: asyncio.Transport, request: Request, ip: str) -> None:
        self.service = service
        self.transport = transport
        self.request = request
        self.ip = ip  # the client's (a trusted proxy's forwarding headers' when it is behind one)
        self._admitted = False  # counted in download_max_concurrent(_per_ip)
        self.closed = False
        self.paused = False
        self._file: BinaryIO | None = None
        self._remaining = 0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        request = self.request
        if request.method not in ("GET", "HEAD"):
            self._finish(text_response(405, "Files are only read here (GET, HEAD).\n", [("Allow", "GET, HEAD")]))
            return
        parts = request.path.partition("?")[0].split("/")
        # /files/<id>/<name> (the name is only for people: the id alone finds the file)
        if len(parts) not in (3, 4) or not FILE_ID_PATTERN.fullmatch(parts[2]):
            self._finish(text_response(404, "No such file.\n"))
            return
        file_id = parts[2]
        service = self.service
        accounts = service.server.accounts
        if accounts is None:
            self._finish(text_response(404, "No such file.\n"))
            return
        refused = service.admit_download(self.ip)
        if refused:
            self._finish(text_response(503, refused + "\n", [("Retry-After", "10")]))
            return
        self._admitted = True
        store = service.store
        head_only = request.method == "HEAD"

        def look_up(storage: Storage) -> tuple[UploadRecord | None, BinaryIO | None]:
            record = storage.get_upload(file_id)
            if record is None or head_only:
                return record, None
            return record, store.open(file_id)

        accounts.write(look_up, self._found)

    def _found(self, outcome: Outcome[tuple[UploadRecord | None, BinaryIO | None]]) -> None:
        record, file = outcome.value if outcome.value is not None else (None, None)
        if self.closed:
            if file is not None:
                file.close()
            return
        if outcome.error is not None:
            log.error("could not look up a file: %s", outcome.error)
            self._finish(text_response(503, "The server cannot serve files right now.\n", [("Retry-After", "60")]))
            return
        config = self.service.server.config
        expired = (record is not None and config.upload_retention_days
                   and record.created < self.service.server.wallclock() - config.upload_retention_days * 86400)
        head_only = self.request.method == "HEAD"
        if record is None or expired or (file is None and not head_only):
            if file is not None:
                file.close()
            self._finish(text_response(404, "No such file (it may have expired).\n"))
            return
        self._send(record, file)

    def _send(self, record: UploadRecord, file: BinaryIO | None) -> None:
        etag = f'"{record.id}"'
        content_type = TEXT + "; charset=utf-8" if record.content_type == TEXT else record.content_type
        headers = [
            ("Content-Type", content_type),
            ("Content-Disposition", content_disposition(record.content_type, record.name)),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", FILE_CSP),
            ("Cache-Control", "private, max-age=86400"),
            ("Referrer-Policy", "no-referrer"),
            ("ETag", etag),
            ("Last-Modified", email.utils.formatdate(record.created, usegmt=True)),
            ("Accept-Ranges", "bytes"),
        ]
        request_headers = self.request.headers
        if etag in request_headers.get_all("If-None-Match"):
            if file is not None:
                file.close()
            self._finish(_response(304, headers, length=0).replace(b"Content-Length: 0\r\n", b""))
            return
        size = record.size
        start, end = 0, size  # [start, end)
        status = 200
        ranges = request_headers.get_all("Range")
        # One range of a picture, a video or audio (seeking); any other Range is ignored: the whole file.
        match = _RANGE.fullmatch(ranges[0].strip()) if len(ranges) == 1 else None
        if match is not None and record.content_type in INLINE_TYPES:
            wanted = _byte_range(match, size)
            if wanted is None:
                if file is not None:
                    file.close()
                self._finish(text_response(416, "Range not satisfiable.\n", [("Content-Range", f"bytes */{size}")]))
                return
            start, end = wanted
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        self.transport.write(_response(status, headers, length=end - start))
        if file is None:  # HEAD
            self._finish(b"")
            return
        self._file = file
        if start:
            file.seek(start)
        self._remaining = end - start
        self._pump()

    def _pump(self) -> None:
        self._scheduled = False
        if self.closed or self.paused or self._file is None:
            return
        file = self._file
        sent = 0
        try:
            while self._remaining and not self.paused and sent < PASS_BYTES:
                chunk = file.read(min(CHUNK_BYTES, self._remaining))
                if not chunk:
                    raise OSError("the file is shorter than its record")
                self._remaining -= len(chunk)
                sent += len(chunk)
                self.transport.write(chunk)  # may call pause_writing
        except OSError as exc:
            log.error("could not read a stored file: %s", exc)
            self.close()
            self.transport.abort()
            return
        self._arm()
        if not self._remaining:
            self._finish(b"")
        elif not self.paused:
            self._scheduled = True
            self.service.loop.call_soon(self._pump)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.service.loop.call_later(self.service.server.config.upload_timeout_s, self._stalled)

    def _stalled(self) -> None:
        self._timer = None
        log.info("file download cut: the reader took nothing for upload_timeout_s")
        self.close()
        self.transport.abort()

    def eof_received(self) -> bool:
        """The client shut its side after its request: the file still goes out (True) unless it is over."""
        return not self.closed

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if not self._scheduled and not self.closed:
            self._scheduled = True
            self.service.loop.call_soon(self._pump)

    def _finish(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)
        self.close()
        self.transport.close()

    def close(self) -> None:
        self.closed = True
        if self._admitted:
            self._admitted = False
            self.service.downloading.release(self.ip)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _byte_range(match: re.Match[str], size: int) -> tuple[int, int] | None:
    """A ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range as [start, end); None when it is not satisfiable.
    (Several ranges at once are not this form: they get the whole file, as multipart answers are not offered.)"""
    first, last = match.groups()
    if not first:
        if not last or int(last) == 0:
            return None
        return (max(0, size - int(last)), size)
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        return None
    return (start, end)
