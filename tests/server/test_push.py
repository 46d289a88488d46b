"""Web Push's pure parts (salotto.server.push): what counts as a mention, and how a line is made to fit a
push. The pushes themselves, end to end: tests/e2e/test_webpush.py."""

from __future__ import annotations

import pytest

from salotto.proto import parse
from salotto.server.push import MAX_PAYLOAD_BYTES, fit_payload, mentions


@pytest.mark.parametrize("text", ["alice", "Alice: lunch?", "hey @ALICE", "ping alice.", "(alice)", "«alice»",
                                  "\x01ACTION waves at alice\x01", "[Alice]"])
def test_a_mention_is_the_nick_as_a_word_in_any_case(text: str) -> None:
    assert mentions(text, "alice")


@pytest.mark.parametrize("text", ["malice", "alice_", "alice2", "alicebot", "ali ce", "", "al-alice", "alice|away"])
def test_a_nick_inside_a_longer_word_or_nick_is_no_mention(text: str) -> None:
    assert not mentions(text, "alice")


def test_the_rfc1459_casemapping_applies() -> None:
    assert mentions("who is bra{ket}?", "BRA[KET]")
    assert mentions("malice, and then alice", "alice")  # a later occurrence counts


def test_a_line_that_fits_is_pushed_as_it_came() -> None:
    raw = b"@msgid=abc;time=2026-12-07T09:00:00.000Z :bob!~bob@h PRIVMSG alice :hi"
    assert fit_payload(raw, parse(raw.decode())) == raw


def test_a_line_too_long_keeps_only_the_msgid_then_loses_text() -> None:
    raw = ("@+big=" + "x" * 4000 + ";msgid=abc;time=2026-12-07T09:00:00.000Z :bob!~bob@h PRIVMSG alice :hello").encode()
    assert fit_payload(raw, parse(raw.decode())) == b"@msgid=abc :bob!~bob@h PRIVMSG alice :hello"
    text = "é" * 3000  # 6000 bytes: cut on a character boundary
    raw = f"@msgid=abc :bob!~bob@h PRIVMSG alice :{text}".encode()
    fitted = fit_payload(raw, parse(raw.decode()))
    assert len(fitted) <= MAX_PAYLOAD_BYTES
    line = parse(fitted.decode("utf-8"))  # (valid UTF-8: no character cut in two)
    assert line.tags == {"msgid": "abc"} and line.params[0] == "alice" and text.startswith(line.params[1])
    assert len(fitted) > MAX_PAYLOAD_BYTES - 2


def test_a_cut_line_keeps_its_parameters_as_they_were() -> None:
    raw = ("@+big=" + "x" * 4000 + ";msgid=m1 :bob!~bob@h PRIVMSG #chan :ends with a space ").encode()
    assert fit_payload(raw, parse(raw.decode())) == b"@msgid=m1 :bob!~bob@h PRIVMSG #chan :ends with a space "
    raw = ("@+big=" + "x" * 4000 + " :bob!~bob@h PRIVMSG #chan word").encode()  # no msgid: no tag at all
    assert fit_payload(raw, parse(raw.decode())) == b":bob!~bob@h PRIVMSG #chan :word"
