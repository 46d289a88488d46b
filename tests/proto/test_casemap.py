"""Casemapping: rfc1459, where []\\~ are the upper case of {}|^."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salotto.proto.casemap import CASEMAPPING, casefold


def test_advertised_casemapping() -> None:
    assert CASEMAPPING == "rfc1459"


def test_ascii_letters_fold_to_lower() -> None:
    assert casefold(string.ascii_uppercase) == string.ascii_lowercase
    assert casefold(string.ascii_lowercase) == string.ascii_lowercase


@pytest.mark.parametrize(("upper", "lower"), [("[", "{"), ("]", "}"), ("\\", "|"), ("~", "^")])
def test_rfc1459_specials(upper: str, lower: str) -> None:
    assert casefold(upper) == lower
    assert casefold(lower) == lower


def test_nicks_differing_only_in_specials_collide() -> None:
    assert casefold("Guest[Away]\\~") == casefold("guest{away}|^")


def test_characters_outside_the_mapping_are_kept() -> None:
    # rfc1459 is ASCII only: no Unicode folding, digits and other punctuation untouched.
    assert casefold("ÀÉ_-`0123") == "ÀÉ_-`0123"
    assert casefold("#Chan") == "#chan"


@given(st.text(max_size=50))
def test_casefold_is_idempotent_and_length_preserving(text: str) -> None:
    folded = casefold(text)
    assert casefold(folded) == folded
    assert len(folded) == len(text)
    assert not any(ch in folded for ch in string.ascii_uppercase + "[]\\~")


@given(st.text(alphabet=st.sampled_from(string.printable + "[]\\~{}|^ÀéΣ"), max_size=30) | st.text(max_size=30))
def test_every_string_folds_as_the_rfc1459_table_says(text: str) -> None:
    """The rule itself, one character at a time: casefold's shortcut for ASCII must give the same."""
    table = str.maketrans(string.ascii_uppercase + "[]\\~", string.ascii_lowercase + "{}|^")
    assert casefold(text) == text.translate(table)
