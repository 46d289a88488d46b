"""Sharing files: uploads to the server's file host, and previews of the files its links point to.

The client side of soju's ``soju.im/FILEHOST`` ISUPPORT token
(https://codeberg.org/emersion/soju/src/branch/master/doc/ext/filehost.md): the token's value is the
upload URL; a file goes there in an HTTP ``POST`` with the IRC login's credentials (HTTP Basic for SASL
PLAIN), its type, name and size in ``Content-Type``, ``Content-Disposition`` and ``Content-Length``. A
``201 Created`` names the file's URL in ``Location`` (relative to the upload URL, or absolute), which
the client then sends as a message. Plain ``http`` is refused while the IRC connection uses TLS, as the
spec requires.

Links to files on the same host (same scheme, host and port as the upload URL, ``/files/`` in the path)
get a preview: PNG and GIF images (what Tk draws without extra libraries) are fetched, bounded in bytes
and pixels; other files are described by a ``HEAD`` (type and size). Nothing is fetched from anywhere
else, and redirects are not followed.

The functions here block; :class:`salotto.clients.core.client.Client` runs them on worker threads.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import mimetypes
import os
import re
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urljoin, urlsplit

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = [
    "FILEHOST_TOKEN",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_MAX_PIXELS",
    "Cancel",
    "Preview",
    "UploadCancelled",
    "UploadError",
    "content_disposition",
    "fetch_preview",
    "file_urls",
    "filehost",
    "human_size",
    "image_size",
    "upload",
    "upload_problem",
]

FILEHOST_TOKEN = "soju.im/FILEHOST"
# Bytes of an image fetched for a preview at most; a bigger one is shown as a link.
PREVIEW_MAX_BYTES = 8 * 1024 * 1024
# Pixels (width x height) of an image decoded for a preview at most: a small file can claim a huge
# picture (a decompression bomb), and Tk would allocate 4 bytes per pixel for it.
PREVIEW_MAX_PIXELS = 16_000_000
# Seconds an HTTP request may stall (connect, or between two reads or writes) before it fails.
HTTP_TIMEOUT_S = 30.0
# Bytes sent per write while uploading: progress is reported after each.
UPLOAD_CHUNK_BYTES = 64 * 1024
# Bytes of an error reply's text shown to the user at most.
ERROR_TEXT_CHARS = 300
# The image types Tk's PhotoImage reads by itself, by their first bytes.
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
PREVIEW_TYPES = frozenset({"image/png", "image/gif"})
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_ISUPPORT_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


class UploadError(Exception):
    """An upload that did not happen; the message says why, for the user."""


class UploadCancelled(UploadError):
    """The user cancelled the upload."""


class Cancel:
    """Cancels an upload from another thread: the flag is checked between chunks, and the connection is
    shut under a send that waits on a slow or stalled server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self.cancelled = False

    def attach(self, connection: http.client.HTTPConnection | None) -> None:
        with self._lock:
            self._connection = connection

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.cancelled:
            raise UploadCancelled("cancelled")


def filehost(s: Session) -> str:
    """The upload URL the server advertises (ISUPPORT ``soju.im/FILEHOST``), "" when none."""
    value = s.isupport.get(FILEHOST_TOKEN, "")
    # ISUPPORT values escape some characters as \\xHH (https://modern.ircdocs.horse/#rplisupport-parameters).
    return _ISUPPORT_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def upload_problem(s: Session, tls: bool) -> str:
    """Why the user cannot upload now ("" when they can): no file host, not logged in, insecure URL.

    The reason reads after "Could not share NAME: ".
    """
    if not s.registered:
        return "not connected; files can be shared once the connection is back"
    url = filehost(s)
    if not url:
        return "this server does not take files (it advertises no soju.im/FILEHOST)"
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return f"this server's file host uses the {scheme or 'no'} scheme; the client speaks http and https"
    if scheme == "http" and tls:
        return ("this server's file host is plain http while the chat connection is encrypted (TLS); the "
                "client does not send files unencrypted")
    if not s.account or not s.config.sasl_account or not s.config.sasl_password:
        return "sharing files needs an account: connect with your account and password to upload"
    return ""


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), (a.hostname or "").lower(), a.port or _default_port(a.scheme)) == (
        b.scheme.lower(), (b.hostname or "").lower(), b.port or _default_port(b.scheme))


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == "https" else 80


def file_urls(text: str, host_url: str) -> list[str]:
    """The links in ``text`` to files on the file host at ``host_url`` (same origin, ``/files/`` path)."""
    if not host_url or "://" not in text:
        return []
    found = []
    for match in _URL.finditer(text):
        url = match.group(0)
        if "/files/" in urlsplit(url).path and same_origin(url, host_url) and url not in found:
            found.append(url)
    return found


def file_name(url: str) -> str:
    """The file's name as the URL's last path segment says it."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or url


def human_size(size: int) -> str:
    """``532 bytes``, ``12 KB``, ``3.4 MB``: what a file's size reads like beside its name."""
    if size < 1024:
        return f"{size} bytes" if size != 1 else "1 byte"
    for unit in ("KB", "MB", "GB"):
        size_f = size / 1024
        if size_f < 1024 or unit == "GB":
            return f"{size_f:.1f} {unit}" if size_f < 10 else f"{size_f:.0f} {unit}"
        size //= 1024
    return f"{size} GB"  # pragma: no cover - the loop returns


def content_disposition(name: str) -> str:
    """``attachment; filename="..."`` (RFC 6266), with ``filename*`` for a name that is not plain ASCII."""
    plain = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in name)
    quoted = plain.replace("\\", "\\\\").replace('"', '\\"')
    value = f'attachment; filename="{quoted}"'
    if plain != name or any(ch in name for ch in ';"\\'):  # (a naive reader splits at ";")
        value += "; filename*=UTF-8''" + quote(name, safe="")
    return value


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(content type, width, height) of a PNG or GIF from its first bytes; None for anything else."""
    if data.startswith(_PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", width, height
    if data[:6] in _GIF_MAGICS and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "image/gif", width, height
    return None


def _connection(url: str, timeout_s: float, verify: bool) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UploadError(f"Not an http or https URL: {url}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if parts.scheme.lower() == "https":
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout_s, context=context), target
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s), target


def basic_auth(account: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{account}:{password}".encode()).decode("ascii")


def _error_text(response: http.client.HTTPResponse) -> str:
    body = response.read(ERROR_TEXT_CHARS * 4).decode("utf-8", "replace")
    text = " ".join(body.split())
    if response.getheader("Content-Type", "").lower().startswith("text/html"):
        text = ""  # a proxy's error page: its markup says nothing to a reader
    return text[:ERROR_TEXT_CHARS]


def explain_status(status: int, reason: str, text: str) -> str:
    """What a refused upload means, in words; the server's own text is kept when it gave one."""
    meaning = {
        401: "the server did not accept your login for uploads",
        403: "the server does not let this account upload files",
        404: "the server's upload address was not found",
        413: "the file is too big for this server",
        415: "the server does not take this type of file",
        429: "too many uploads for now; try again later",
        507: "the server has no room left for it (or your share of it is used up)",
    }.get(status, f"the server answered {status} {reason}".strip())
    return f"{meaning}: {text}" if text and text.lower() not in meaning.lower() else meaning


def upload(
    upload_url: str,
    path: str | os.PathLike[str],
    *,
    account: str,
    password: str,
    content_type: str = "",
    name: str = "",
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = HTTP_TIMEOUT_S,
    verify: bool = True,
    cancel: Cancel | None = None,
) -> str:
    """POST the file at ``path`` to ``upload_url``; its URL (absolute) on success, else :class:`UploadError`.

    ``progress(sent, total)`` is called after each chunk, on the calling thread; ``cancel.cancel()`` from
    another thread stops it (:class:`UploadCancelled`).
    """
    cancel = cancel or Cancel()
    path = Path(path)
    name = name or path.name
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UploadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        total = os.fstat(handle.fileno()).st_size
        content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        connection, target = _connection(upload_url, timeout_s, verify)
        cancel.attach(connection)
        try:
            try:
                cancel.check()
                connection.connect()
                cancel.check()
                connection.putrequest("POST", target)
                connection.putheader("Authorization", basic_auth(account, password))
                connection.putheader("Content-Type", content_type)
                connection.putheader("Content-Disposition", content_disposition(name))
                connection.putheader("Content-Length", str(total))
                connection.endheaders()
                sent = 0
                while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                    cancel.check()
                    connection.send(chunk)
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, total)
            except (BrokenPipeError, ConnectionResetError):
                cancel.check()  # (the shutdown of a cancel breaks the send)
                # Else the server refused it before the end (too big?): its answer says why.
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                cancel.check()
                raise UploadError(f"the upload failed ({_describe(exc)})") from exc
            if response.status == 201:
                location = response.getheader("Location", "")
                response.read()
                if not location:
                    raise UploadError("the server stored the file but did not say where (no Location)")
                return urljoin(upload_url, location)
            raise UploadError(explain_status(response.status, response.reason, _error_text(response)))
        except OSError as exc:
            cancel.check()
            raise UploadError(f"the upload failed ({_describe(exc)})") from exc
        finally:
            cancel.attach(None)
            connection.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "the file host refused the connection"
    if isinstance(exc, TimeoutError):
        return "the file host did not answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the file host's TLS certificate is not trusted: {exc.verify_message}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Preview:
    """What a link to a shared file shows: the image's bytes for a PNG or GIF that fits, else a link."""

    url: str
    name: str
    content_type: str = ""
    size: int | None = None
    image: bytes | None = None  # a PNG or GIF within the limits
    width: int = 0
    height: int = 0
    error: str = ""  # why there is no preview (not found, too big...), "" when there is none to tell

    @property
    def label(self) -> str:
        """``report.pdf · 120 KB``: the link's text."""
        return self.name + (f" \u00b7 {human_size(self.size)}" if self.size is not None else "")


def fetch_preview(
    url: str,
    *,
    authorization: str = "",
    max_bytes: int = PREVIEW_MAX_BYTES,
    max_pixels: int = PREVIEW_MAX_PIXELS,
    timeout_s: float = HTTP_TIMEOUT_S,
    verify: bool = True,
) -> Preview:
    """HEAD the file; GET it when it is a PNG or GIF of at most ``max_bytes`` and ``max_pixels``.

    Never raises for what the network or the server does: the preview then says what went wrong.
    """
    name = file_name(url)
    headers = {"Authorization": authorization} if authorization else {}
    try:
        connection, target = _connection(url, timeout_s, verify)
    except UploadError as exc:
        return Preview(url, name, error=str(exc))
    try:
        connection.request("HEAD", target, headers=headers)
        head = connection.getresponse()
        head.read()
        if head.status != 200:
            return Preview(url, name, error=f"{head.status} {head.reason}".strip())
        content_type = head.getheader("Content-Type", "").split(";")[0].strip().lower()
        length = head.getheader("Content-Length", "")
        size = int(length) if length.isdigit() else None
        if content_type not in PREVIEW_TYPES:
            return Preview(url, name, content_type, size)
        if size is not None and size > max_bytes:
            return Preview(url, name, content_type, size, error="too big for a preview")
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            response.read()
            return Preview(url, name, content_type, size, error=f"{response.status} {response.reason}".strip())
        data = response.read(max_bytes + 1)
        if len(data) > max_bytes:
            return Preview(url, name, content_type, size, error="too big for a preview")
        found = image_size(data)
        if found is None:  # the bytes are no PNG or GIF, whatever the header said: no decoding
            return Preview(url, name, content_type, len(data), error="not a PNG or GIF image")
        kind, width, height = found
        if width * height > max_pixels or not width or not height:
            return Preview(url, name, kind, len(data), width=width, height=height,
                           error=f"{width}\u00d7{height} pixels: too big for a preview")
        return Preview(url, name, kind, len(data), data, width, height)
    except (OSError, http.client.HTTPException) as exc:
        return Preview(url, name, error=_describe(exc))
    finally:
        connection.close()
