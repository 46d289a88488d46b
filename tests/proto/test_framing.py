"""Framing: LineReader splits a byte stream into lines and enforces the length limits."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from salotto.proto.framing import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_TAGS_BYTES,
    LINE_TOO_LONG,
    LineReader,
    LineTooLong,
    decode_line,
)

# Small limits keep generated streams short while exercising every branch.
SMALL_LINE = 32
SMALL_TAGS = 64


def feed_all(reader: LineReader, chunks: list[bytes]) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    return out


def test_defaults_are_the_rfc_and_ircv3_limits() -> None:
    reader = LineReader()
    assert (reader.max_line_bytes, reader.max_tags_bytes) == (512, 4096)
    assert (DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_TAGS_BYTES) == (512, 4096)


def test_crlf_and_bare_lf_both_end_a_line() -> None:
    reader = LineReader()
    assert reader.feed(b"NICK a\r\nUSER b 0 * :c\nPING") == [b"NICK a", b"USER b 0 * :c"]
    assert reader.buffered_bytes == len(b"PING")
    assert reader.feed(b" x\r") == []
    assert reader.feed(b"\n") == [b"PING x"]
    assert reader.buffered_bytes == 0


def test_empty_lines_are_skipped() -> None:
    assert LineReader().feed(b"\r\n\n\r\nPING\r\n\n") == [b"PING"]


def test_cr_inside_a_line_is_kept() -> None:
    # Only the CR just before the LF belongs to the line ending; parse() then rejects the line.
    assert LineReader().feed(b"a\rb\r\n") == [b"a\rb"]


def test_limit_counts_the_crlf() -> None:
    reader = LineReader(max_line_bytes=10, max_tags_bytes=0)
    # 8 bytes + CRLF = 10: fits; 9 bytes + CRLF = 11: too long.
    assert reader.feed(b"12345678\r\n123456789\r\nok\r\n") == [b"12345678", LINE_TOO_LONG, b"ok"]


def test_tags_have_their_own_budget() -> None:
    reader = LineReader(max_line_bytes=10, max_tags_bytes=8)
    tags = b"@a=12345 "  # 9 bytes with '@' and space: over 8
    ok_tags = b"@a=1234 "  # 8 bytes: fits
    assert reader.feed(ok_tags + b"12345678\r\n") == [ok_tags + b"12345678"]
    assert reader.feed(ok_tags + b"123456789\r\n") == [LINE_TOO_LONG]
    assert reader.feed(tags + b"PING\r\n") == [LINE_TOO_LONG]


def test_untagged_line_does_not_get_the_tags_budget() -> None:
    reader = LineReader(max_line_bytes=10, max_tags_bytes=100)
    assert reader.feed(b"x" * 20 + b"\r\n") == [LINE_TOO_LONG]


def test_endless_line_is_reported_once_and_the_next_line_survives() -> None:
    reader = LineReader(max_line_bytes=SMALL_LINE, max_tags_bytes=SMALL_TAGS)
    out = feed_all(reader, [b"x" * 1000] * 20 + [b"tail\r\nPING :after\r\n"])
    assert out == [LINE_TOO_LONG, b"PING :after"]


def test_line_too_long_repr() -> None:
    assert repr(LINE_TOO_LONG) == "LINE_TOO_LONG"


# ---- properties -------------------------------------------------------------------------------

line_bodies = st.binary(min_size=1, max_size=SMALL_LINE - 2).filter(
    lambda b: b"\n" not in b and not b.endswith(b"\r") and not b.startswith(b"@")
)


@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@given(st.lists(line_bodies, max_size=20), st.booleans(), st.data())
def test_any_split_of_the_stream_yields_the_same_lines(lines: list[bytes], crlf: bool, data: st.DataObject) -> None:
    ending = b"\r\n" if crlf else b"\n"
    stream = b"".join(line + ending for line in lines)
    chunks = data.draw(split_points(stream))
    reader = LineReader(max_line_bytes=SMALL_LINE, max_tags_bytes=SMALL_TAGS)
    assert feed_all(reader, chunks) == lines


@given(
    st.lists(
        st.one_of(
            line_bodies.map(lambda b: (b, False)),
            st.integers(SMALL_LINE - 1, 4 * (SMALL_LINE + SMALL_TAGS)).map(lambda n: (b"y" * n, True)),
        ),
        max_size=12,
    ),
    st.data(),
)
def test_each_long_line_reports_once_and_later_lines_come_through(
    items: list[tuple[bytes, bool]], data: st.DataObject
) -> None:
    stream = b"".join(line + b"\r\n" for line, _ in items)
    chunks = data.draw(split_points(stream))
    reader = LineReader(max_line_bytes=SMALL_LINE, max_tags_bytes=SMALL_TAGS)
    expected = [LINE_TOO_LONG if too_long else line for line, too_long in items]
    assert feed_all(reader, chunks) == expected


@given(st.lists(st.binary(max_size=300), max_size=30))
def test_buffer_is_bounded_whatever_is_fed(chunks: list[bytes]) -> None:
    reader = LineReader(max_line_bytes=SMALL_LINE, max_tags_bytes=SMALL_TAGS)
    for chunk in chunks:
        for item in reader.feed(chunk):
            if item is not LINE_TOO_LONG:
                assert isinstance(item, bytes)
                assert item and b"\n" not in item
        assert reader.buffered_bytes <= SMALL_LINE + SMALL_TAGS


def test_buffer_is_bounded_with_default_limits() -> None:
    reader = LineReader()
    for _ in range(100):
        reader.feed(b"@" + b"t" * 4000)
        assert reader.buffered_bytes <= DEFAULT_MAX_LINE_BYTES + DEFAULT_MAX_TAGS_BYTES


@given(st.binary(max_size=600))
def test_decode_line_never_raises_and_keeps_utf8(raw: bytes) -> None:
    text = decode_line(raw)
    assert isinstance(text, str)
    try:
        assert text == raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 fallback: one character per byte, nothing lost.
        assert text.encode("latin-1") == raw


def test_decode_line_examples() -> None:
    assert decode_line("caffè".encode()) == "caffè"
    assert decode_line("caffè".encode("latin-1")) == "caffè"
