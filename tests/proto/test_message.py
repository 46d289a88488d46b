"""Messages: parse, format_line, tag escaping; unit cases and hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salotto.proto.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from salotto.proto.message import (
    Message,
    escape_tag_value,
    format_line,
    format_tags,
    is_valid_tag_key,
    parse,
    unescape_tag_value,
)

# ---- strategies -------------------------------------------------------------------------------

_FORBIDDEN = "\r\n\x00"
tag_keys = st.from_regex(r"\+?([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*/)?[A-Za-z0-9-]+", fullmatch=True)
# NUL has no escape in message-tags, so it cannot travel in a tag value; everything else can.
tag_values = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"))
tags = st.dictionaries(tag_keys, tag_values, max_size=5)
# A source is one word: no space, no line breakers; otherwise anything (nick!user@host, server names).
sources = st.text(st.characters(blacklist_characters=" " + _FORBIDDEN, codec="utf-8"), min_size=1)
commands = st.from_regex(r"[A-Za-z]+|[0-9]{3}", fullmatch=True)
# Tabs, IRC formatting codes (\x02 \x1d \x1f) and Unicode spaces are not separators: keep them in.
middle_chars = st.characters(blacklist_characters=" " + _FORBIDDEN, codec="utf-8")
middle_params = st.text(middle_chars, min_size=1).filter(lambda p: not p.startswith(":"))
last_params = st.text(st.characters(blacklist_characters=_FORBIDDEN, codec="utf-8"))


@st.composite
def param_lists(draw: st.DrawFn) -> list[str]:
    params = draw(st.lists(middle_params, max_size=14))
    if draw(st.booleans()):
        params.append(draw(last_params))
    return params


# ---- parse ------------------------------------------------------------------------------------


def test_parse_full_message() -> None:
    msg = parse("@time=2024-01-01T00:00:00Z;+draft/reply=abc :nick!u@h privmsg #chan :hello world")
    assert msg == Message(
        "PRIVMSG",
        ["#chan", "hello world"],
        "nick!u@h",
        {"time": "2024-01-01T00:00:00Z", "+draft/reply": "abc"},
    )


def test_parse_keeps_tabs_and_formatting_codes_inside_middle_params() -> None:
    # str.split() would cut at \t, \x1c-\x1f (\x1f is IRC underline) and U+00A0; only 0x20 separates.
    msg = parse("MODE #c\x1fx +b a\tb\xa0c")
    assert msg.params == ["#c\x1fx", "+b", "a\tb\xa0c"]


@pytest.mark.parametrize("line", ["PRIVMSG #c :a\rQUIT :x", "PRIVMSG #c :a\x00b", "NICK a\nb"])
def test_parse_rejects_cr_lf_nul_inside_a_line(line: str) -> None:
    with pytest.raises(MalformedMessage):
        parse(line)


@pytest.mark.parametrize(
    "line",
    ["", "   ", "@a=b", "@a=b ", ":source", ":source   ", "@a=b :source", ":src :only trailing"],
)
def test_parse_without_command_is_malformed(line: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        parse(line)
    # The peer's fault: callers answer and keep the connection.
    assert isinstance(info.value, RemoteProtocolError)


def test_parse_drops_invalid_tag_keys_but_keeps_the_message() -> None:
    # message-tags: an invalid key must not make the receiver reject the message.
    msg = parse("@ok=1;bad?key=2;=3;;é=4;+vendor.example/x PING :t")
    assert msg.tags == {"ok": "1", "+vendor.example/x": ""}
    assert msg.command == "PING"


def test_parse_repeated_tag_key_last_wins() -> None:
    assert parse("@a=1;a=2 PING").tags == {"a": "2"}


def test_parse_tag_without_value_and_with_empty_value_are_empty_strings() -> None:
    assert parse("@a;b= PING").tags == {"a": "", "b": ""}


# ---- tag escaping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("a\\:b", "a;b"),
        ("a\\sb", "a b"),
        ("a\\\\b", "a\\b"),
        ("a\\r\\n", "a\r\n"),
        ("\\b", "b"),  # unknown escape: the backslash goes
        ("end\\", "end"),  # lone trailing backslash: dropped
        ("plain", "plain"),
    ],
)
def test_unescape_tag_value(raw: str, value: str) -> None:
    assert unescape_tag_value(raw) == value


def test_escape_tag_value_leaves_no_separator_on_the_wire() -> None:
    escaped = escape_tag_value("a; b\\c\r\nd")
    assert escaped == "a\\:\\sb\\\\c\\r\\nd"


@given(tag_values)
def test_tag_value_escape_round_trip(value: str) -> None:
    escaped = escape_tag_value(value)
    assert not any(ch in escaped for ch in "; \r\n")
    assert unescape_tag_value(escaped) == value


# ---- format -----------------------------------------------------------------------------------


def test_format_line_colon_only_when_needed() -> None:
    assert format_line("PRIVMSG", ["#c", "hi"]) == "PRIVMSG #c hi"
    assert format_line("PRIVMSG", ["#c", "hi there"]) == "PRIVMSG #c :hi there"
    assert format_line("PRIVMSG", ["#c", ":)"]) == "PRIVMSG #c ::)"
    assert format_line("AWAY", [""], source="n") == ":n AWAY :"


def test_format_tags_value_less_and_escaped() -> None:
    assert format_tags({}) == ""
    assert format_tags({"a": "", "+b/c": "x y"}) == "@a;+b/c=x\\sy"


@pytest.mark.parametrize(
    ("command", "params", "source"),
    [
        ("PRIVMSG", ["", "x"], None),  # empty middle param would vanish
        ("PRIVMSG", ["a b", "x"], None),  # spaced middle param would split
        ("PRIVMSG", [":a", "x"], None),  # colon-led middle param would become the trailing
        ("PRIVMSG", ["#c", "hi\r\nQUIT :bye"], None),  # line injection
        ("PRIVMSG", ["#c\r", "hi"], None),
        ("PRIVMSG", ["#c", "nul\x00"], None),
        ("", ["x"], None),
        ("PRIV MSG", [], None),
        (":PRIVMSG", [], None),
        ("PRIVMSG", ["#c", "x"], "nick with space"),
        ("PRIVMSG", ["#c", "x"], "nick\n"),
    ],
)
def test_format_line_refuses_what_the_wire_cannot_carry(command: str, params: list[str], source: str | None) -> None:
    with pytest.raises(LocalProtocolError):
        format_line(command, params, source=source)


@pytest.mark.parametrize("bad_tags", [{"a b": "x"}, {"a=b": "x"}, {"": "x"}, {"a;b": ""}, {"ok": "nul\x00"}])
def test_format_tags_refuses_invalid_keys_and_nul(bad_tags: dict[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        format_tags(bad_tags)
    with pytest.raises(LocalProtocolError):
        format_line("PING", ["x"], tags=bad_tags)


def test_local_protocol_error_is_not_the_peers_fault() -> None:
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


@pytest.mark.parametrize("key", ["a", "+a", "draft/reply", "+example.com/foo-bar", "msgid"])
def test_valid_tag_keys(key: str) -> None:
    assert is_valid_tag_key(key)


@pytest.mark.parametrize("key", ["", "+", "a b", "a=b", "a;b", "é", "a\\b", "++a"])
def test_invalid_tag_keys(key: str) -> None:
    assert not is_valid_tag_key(key)


def test_message_to_line_round_trip() -> None:
    msg = Message("PRIVMSG", ["#c", "hi there"], "n!u@h", {"a": "b c"})
    assert msg.to_line() == "@a=b\\sc :n!u@h PRIVMSG #c :hi there"
    assert parse(msg.to_line()) == msg


# ---- round-trip properties --------------------------------------------------------------------


@given(tags, st.one_of(st.none(), sources), commands, param_lists())
def test_format_then_parse_round_trip(
    msg_tags: dict[str, str], source: str | None, command: str, params: list[str]
) -> None:
    line = format_line(command, params, source=source, tags=msg_tags)
    assert not any(ch in line for ch in _FORBIDDEN)
    assert parse(line) == Message(command.upper(), params, source, msg_tags)


@given(tags)
def test_format_tags_round_trip(msg_tags: dict[str, str]) -> None:
    section = format_tags(msg_tags)
    if not msg_tags:
        assert section == ""
    else:
        assert " " not in section
        assert parse(section + " PING").tags == msg_tags


@given(st.text(st.characters(codec="utf-8"), max_size=200))
def test_parse_raises_only_malformed_message(line: str) -> None:
    try:
        msg = parse(line)
    except MalformedMessage:
        return
    assert msg.command
    assert " " not in msg.command
