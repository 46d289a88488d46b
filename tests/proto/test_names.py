"""Nick, channel and host name validation; userhost splitting; masks and their matching."""

from __future__ import annotations

import time
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salotto.proto.casemap import casefold
from salotto.proto.names import (
    CHANTYPES,
    Userhost,
    is_valid_channel,
    is_valid_hostname,
    is_valid_nick,
    mask_match,
    normalize_mask,
    split_userhost,
)

# ---- nicks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("nick", ["alice", "A", "[away]", "\\o|", "`x", "_", "^_^", "{x}|y", "a1-2", "x" * 30])
def test_valid_nicks(nick: str) -> None:
    assert is_valid_nick(nick, max_len=30)


@pytest.mark.parametrize(
    "nick",
    ["", "1abc", "-abc", "a b", "a,b", "a!b", "a@b", "#chan", ":nick", "a*", "a?", "è", "a.b", "x" * 31],
)
def test_invalid_nicks(nick: str) -> None:
    assert not is_valid_nick(nick, max_len=30)


def test_nick_length_limit_is_inclusive() -> None:
    assert is_valid_nick("abcde", max_len=5)
    assert not is_valid_nick("abcdef", max_len=5)


# ---- channels ---------------------------------------------------------------------------------


def test_chantypes() -> None:
    assert CHANTYPES == "#"


@pytest.mark.parametrize("name", ["#a", "#salotto", "#caffè", "#a.b-c_d", "##double", "#" + "x" * 49])
def test_valid_channels(name: str) -> None:
    assert is_valid_channel(name, max_len=50)


@pytest.mark.parametrize(
    "name",
    ["", "#", "salotto", "&local", "#a b", "#a,b", "#a\x07b", "#a:b", "#a\rb", "#a\nb", "#a\x00b", "#" + "x" * 50],
)
def test_invalid_channels(name: str) -> None:
    assert not is_valid_channel(name, max_len=50)


# ---- host names -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["irc.example.com", "a.b", "xn--bcher-kva.ch", "a-b.c", ("a" * 63) + ".com"])
def test_valid_hostnames(host: str) -> None:
    assert is_valid_hostname(host)


@pytest.mark.parametrize(
    "host",
    [
        "irc.example.com\n",  # re.match with '$' used to accept a trailing newline
        "irc.example.com.",
        ".example.com",
        "a..b",
        "a-.b",
        "irc.Bücher.ch",
        ("a" * 64) + ".com",  # labels are at most 63 octets
        ".".join(["abc"] * 64),  # 255 characters: over 253
        "irc example.com",
    ],
)
def test_invalid_hostnames(host: str) -> None:
    assert not is_valid_hostname(host)


# ---- userhost ---------------------------------------------------------------------------------


def test_split_userhost_fields() -> None:
    uh = split_userhost("nick!~user@host.example")
    assert uh == Userhost("nick", "~user", "host.example")
    assert (uh.nick, uh.user, uh.host) == ("nick", "~user", "host.example")


def test_split_userhost_server_name() -> None:
    assert split_userhost("irc.example.com") == Userhost("irc.example.com", "", "")


# ---- normalize_mask ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "normalized"),
    [
        ("bob", "bob!*@*"),
        ("bob*", "bob*!*@*"),
        ("example.com", "*!*@example.com"),
        ("*.example.com", "*!*@*.example.com"),
        ("2001:db8::1", "*!*@2001:db8::1"),
        ("user@host", "*!user@host"),
        ("bob!user", "bob!user@*"),
        ("bob!user@host", "bob!user@host"),
        ("*!*@*", "*!*@*"),
        # Empty parts become '*' instead of a mask that can match nobody.
        ("bob!", "bob!*@*"),
        ("bob!@host", "bob!*@host"),
        ("@host", "*!*@host"),
        ("!user@", "*!user@*"),
        ("", "*!*@*"),
    ],
)
def test_normalize_mask(mask: str, normalized: str) -> None:
    assert normalize_mask(mask) == normalized


@given(st.text(st.characters(blacklist_characters=" \r\n\x00"), max_size=30))
def test_normalize_mask_is_idempotent_and_full_form(mask: str) -> None:
    normalized = normalize_mask(mask)
    assert normalize_mask(normalized) == normalized
    nick, sep, rest = normalized.partition("!")
    assert sep and nick
    assert "@" in rest


# ---- mask_match -------------------------------------------------------------------------------


def reference_match(mask: str, subject: str) -> bool:
    """Textbook glob matching by dynamic programming, as the oracle for mask_match."""
    mask, subject = casefold(mask), casefold(subject)

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(mask):
            return j == len(subject)
        if mask[i] == "*":
            return match(i + 1, j) or (j < len(subject) and match(i, j + 1))
        return j < len(subject) and (mask[i] in ("?", subject[j])) and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.parametrize(
    ("mask", "subject", "expected"),
    [
        ("*", "", True),
        ("", "", True),
        ("", "a", False),
        ("?", "", False),
        ("**", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXcYb", False),
        ("*!*@*.example.com", "Nick!User@host.EXAMPLE.com", True),
        ("nick[away]!*@*", "NICK{AWAY}!u@h", True),  # rfc1459 casemapping
        ("*.*", "nodot", False),
        ("a.c", "abc", False),  # '.' is literal, not a regex
        ("a+", "aa", False),
        ("a\\*", "a|b", True),  # '\\' folds to '|', then '*' is still a wildcard
        ("*\n", "x\n", True),
    ],
)
def test_mask_match_cases(mask: str, subject: str, expected: bool) -> None:
    assert mask_match(mask, subject) is expected


glob_alphabet = st.sampled_from("ab*?[{|.!@")


@given(st.text(glob_alphabet, max_size=10), st.text(st.sampled_from("abAB[{|\\.!@"), max_size=12))
def test_mask_match_agrees_with_reference(mask: str, subject: str) -> None:
    assert mask_match(mask, subject) is reference_match(mask, subject)


@given(st.text(st.sampled_from("ab.!@"), max_size=15))
def test_a_subject_matches_itself_and_star(subject: str) -> None:
    assert mask_match(subject, subject)
    assert mask_match("*", subject)
    assert mask_match(subject.upper(), subject)


def test_mask_match_has_no_catastrophic_backtracking() -> None:
    # A regex with '.*' per star took seconds on 12 stars; ban masks come from users and are
    # matched on every JOIN and message.
    mask = "*a" * 200 + "b"
    subject = "a" * 500
    started = time.perf_counter()
    for _ in range(10):
        assert not mask_match(mask, subject)
    assert time.perf_counter() - started < 1.0
