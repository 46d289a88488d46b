"""Uploaded files as data: their type sniffed from the first bytes, their name made safe, how they are served.

No I/O. The content type of an upload is never the client's word (its ``Content-Type`` header): it is what
:func:`sniff` finds in the bytes, from a short table of signatures. Anything it does not know is
``application/octet-stream``; HTML and SVG are text to it (``text/plain``), so an upload is never rendered
as a page or a script by the browser (salotto.transport.files adds ``nosniff`` and a sandboxing CSP).
"""

from __future__ import annotations

import base64
import re
import unicodedata
from typing import Final
from urllib.parse import quote, unquote

__all__ = [
    "INLINE_TYPES",
    "OCTET_STREAM",
    "SNIFF_BYTES",
    "TEXT",
    "UPLOAD_TYPES",
    "content_disposition",
    "filename_from_disposition",
    "parse_basic",
    "safe_filename",
    "sniff",
]

# Bytes sniff() looks at: every signature below is within the first 12, and 512 bytes of text tell
# UTF-8 from binary well enough.
SNIFF_BYTES: Final = 512
OCTET_STREAM: Final = "application/octet-stream"
TEXT: Final = "text/plain"
# Every type sniff() gives, so every value upload_types may list.
UPLOAD_TYPES: Final = (
    "image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm", "audio/ogg", "audio/mpeg",
    "application/pdf", "application/zip", TEXT, OCTET_STREAM,
)  # fmt: skip
# Shown in the browser (Content-Disposition: inline); every other type is a download (attachment).
INLINE_TYPES: Final = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm", "audio/ogg", "audio/mpeg",
})  # fmt: skip
# Longest file name kept (characters); a longer one is cut, its extension kept.
MAX_NAME_CHARS: Final = 100

_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),  # EBML: WebM (and Matroska, which browsers play as WebM)
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
)
# Control characters that plain text has; any other below 0x20 (and DEL) makes it binary.
_TEXT_CONTROLS: Final = frozenset(b"\t\n\r\x0c\x1b")


def sniff(head: bytes, *, whole: bool = False) -> str:
    """The content type of a file whose first bytes are ``head`` (``whole``: they are all of it).

    Text is UTF-8 without NULs or control characters other than tab, newlines, form feed and escape; a
    multi-byte character cut at the end of a partial ``head`` does not make it binary.
    """
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2:  # an MPEG audio frame, layer III
        return "audio/mpeg"
    if head and _is_text(head, whole):
        return TEXT
    return OCTET_STREAM


def _is_text(head: bytes, whole: bool) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only a character cut by the end of what was read (at most 3 bytes short) may be incomplete.
        if whole or exc.reason != "unexpected end of data" or len(head) - exc.start > 3:
            return False
    return not any((byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F for byte in head)


def safe_filename(name: str | None) -> str:
    """A file name fit for a URL path segment and a Content-Disposition: its last path component, letters,
    digits, ``.``, ``-`` and ``_`` (others become ``_``), no leading dot, at most MAX_NAME_CHARS
    characters with its extension kept; ``file`` when nothing is left."""
    if not name:
        return "file"
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rpartition("/")[2])
    cleaned = "".join(c if c.isalnum() or c in ".-_" else "_" for c in name)
    cleaned = re.sub(r"_{2,}", "_", cleaned).lstrip(".")
    if len(cleaned) > MAX_NAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = cleaned[: MAX_NAME_CHARS - len(ext) - 1 if ext else MAX_NAME_CHARS] + ("." + ext if ext else "")
    cleaned = cleaned.strip("_")
    return cleaned if cleaned.strip(".") else "file"  # (not "." or "..": a URL's dot segment, not a name)


def filename_from_disposition(value: str | None) -> str | None:
    """The file name a request's ``Content-Disposition`` gives (``filename*=UTF-8''...`` preferred, then
    ``filename="..."``), as sent; None when it gives none."""
    if not value:
        return None
    plain: str | None = None
    for part in value.split(";")[1:]:
        key, eq, raw = part.strip().partition("=")
        if not eq:
            continue
        key = key.strip().lower()
        raw = raw.strip()
        if key == "filename*":
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            if charset.lower() == "utf-8":
                return unquote(encoded, errors="replace")
        elif key == "filename":
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            plain = raw
    return plain


def content_disposition(content_type: str, name: str) -> str:
    """``inline`` for the types browsers show safely, ``attachment`` for the rest; the name both as ASCII and
    as RFC 6266's ``filename*``."""
    kind = "inline" if content_type in INLINE_TYPES else "attachment"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_basic(value: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(account:password)`` (RFC 7617) as (account, password); None if it is
    missing, of another scheme or malformed. UTF-8, as SASL PLAIN is."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # (binascii.Error; ValueError: a character that is not ASCII)
        return None
    account, colon, password = decoded.partition(":")
    if not colon or not account or not password:
        return None
    return account, password
