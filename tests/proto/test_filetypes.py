"""Uploaded files as data: the sniffer's table, safe names, the serving policy, Basic credentials."""

from __future__ import annotations

import base64

import pytest

from salotto.proto.filetypes import (
    INLINE_TYPES,
    UPLOAD_TYPES,
    content_disposition,
    filename_from_disposition,
    parse_basic,
    safe_filename,
    sniff,
)


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
    (b"GIF89a\x01\0\x01\0", "image/gif"),
    (b"GIF87a\x01\0\x01\0", "image/gif"),
    (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
    (b"RIFF\x24\0\0\0WAVEfmt ", "application/octet-stream"),  # RIFF, but not WebP
    (b"\0\0\0\x20ftypisom\0\0\x02\0", "video/mp4"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "video/webm"),
    (b"OggS\0\x02\0\0", "audio/ogg"),
    (b"ID3\x04\0\0\0\0\0\0", "audio/mpeg"),
    (b"\xff\xfb\x90\x64\0", "audio/mpeg"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"PK\x03\x04\x14\0", "application/zip"),
    (b"hello, world\n", "text/plain"),
    ("citt\u00e0 \U0001f600\n".encode(), "text/plain"),
    (b"<!doctype html><script>alert(1)</script>", "text/plain"),  # never text/html
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "text/plain"),  # never image/svg+xml
    (b"MZ\x90\0\x03\0\0\0", "application/octet-stream"),
    (b"text with a NUL\0 in it", "application/octet-stream"),
    (b"\xc3\x28 not UTF-8", "application/octet-stream"),
    (b"", "application/octet-stream"),
])
def test_sniff_names_types_by_their_first_bytes(head: bytes, expected: str) -> None:
    assert sniff(head, whole=True) == expected
    assert expected in UPLOAD_TYPES


def test_text_cut_in_a_character_is_still_text_unless_it_is_all() -> None:
    cut = ("a" * 510 + "\u00e8").encode()[:511]  # the first byte of a two-byte character
    assert sniff(cut) == "text/plain"
    assert sniff(cut, whole=True) == "application/octet-stream"


@pytest.mark.parametrize(("given", "safe"), [
    ("holiday photo.png", "holiday_photo.png"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    (".htaccess", "htaccess"),
    ("a/b/", "file"),
    ("", "file"),
    (None, "file"),
    ("caff\u00e8.txt", "caff\u00e8.txt"),
    ("x<script>.html", "x_script_.html"),
    ("a" * 300 + ".jpeg", "a" * 95 + ".jpeg"),
    ("name\r\nSet-Cookie: x", "name_Set-Cookie_x"),
])
def test_safe_filename_keeps_one_harmless_component(given: str | None, safe: str) -> None:
    assert safe_filename(given) == safe


def test_filename_from_disposition_prefers_the_utf8_form() -> None:
    assert filename_from_disposition('attachment; filename="a b.png"') == "a b.png"
    both = "attachment; filename=\"x.png\"; filename*=UTF-8''caff%C3%A8.png"
    assert filename_from_disposition(both) == "caff\u00e8.png"
    assert filename_from_disposition("attachment") is None
    assert filename_from_disposition(None) is None


def test_only_images_video_and_audio_are_inline() -> None:
    assert content_disposition("image/png", "a.png").startswith('inline; filename="a.png"')
    assert content_disposition("text/plain", "a.html").startswith("attachment;")
    assert content_disposition("application/pdf", "a.pdf").startswith("attachment;")
    assert content_disposition("image/png", "caff\u00e8.png") == (
        "inline; filename=\"caff_.png\"; filename*=UTF-8''caff%C3%A8.png")
    assert "image/svg+xml" not in INLINE_TYPES and "text/html" not in INLINE_TYPES


def test_parse_basic() -> None:
    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert parse_basic(basic("alice:pass:with:colons")) == ("alice", "pass:with:colons")
    assert parse_basic(basic("\u00e8va:p\u00e0ss")) == ("\u00e8va", "p\u00e0ss")
    for bad in [None, "", "Bearer abc", "Basic !!!", basic("nopassword"), basic(":pw"), basic("user:")]:
        assert parse_basic(bad) is None
