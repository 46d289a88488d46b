"""Channel mode strings: letters, their arguments and the ISUPPORT groups."""

from __future__ import annotations

from salotto.proto.modes import (
    CHANMODES_A,
    CHANMODES_B,
    CHANMODES_C,
    CHANMODES_D,
    PREFIX_MODES,
    PREFIX_SYMBOLS,
    ModeChange,
    parse_mode_string,
)


def test_mode_groups_are_disjoint() -> None:
    groups = [CHANMODES_A, CHANMODES_B, CHANMODES_C, CHANMODES_D, PREFIX_MODES]
    letters = "".join(groups)
    assert len(set(letters)) == len(letters)
    assert len(PREFIX_MODES) == len(PREFIX_SYMBOLS)


def test_prefix_modes_take_arguments_in_order() -> None:
    changes, unknown = parse_mode_string("+o-v", ["alice", "bob"])
    assert changes == [ModeChange(True, "o", "alice"), ModeChange(False, "v", "bob")]
    assert unknown == []


def test_list_mode_without_argument_is_a_list_request() -> None:
    changes, _ = parse_mode_string("+b", [])
    assert changes == [ModeChange(True, "b", None)]
    changes, _ = parse_mode_string("bI", ["*!*@bad"])
    assert changes == [ModeChange(True, "b", "*!*@bad"), ModeChange(True, "I", None)]


def test_limit_takes_an_argument_only_when_set() -> None:
    changes, _ = parse_mode_string("+l-l+o", ["10", "carol"])
    assert changes == [
        ModeChange(True, "l", "10"),
        ModeChange(False, "l", None),
        ModeChange(True, "o", "carol"),  # '-l' did not eat carol
    ]


def test_key_takes_an_argument_both_ways() -> None:
    changes, _ = parse_mode_string("+k-k", ["secret", "secret"])
    assert changes == [ModeChange(True, "k", "secret"), ModeChange(False, "k", "secret")]


def test_flags_take_no_argument() -> None:
    changes, _ = parse_mode_string("+nt-s+ml", ["5"])
    assert changes == [
        ModeChange(True, "n", None),
        ModeChange(True, "t", None),
        ModeChange(False, "s", None),
        ModeChange(True, "m", None),
        ModeChange(True, "l", "5"),
    ]


def test_unknown_letters_are_reported_and_take_no_argument() -> None:
    changes, unknown = parse_mode_string("+Xo-Z", ["dave"])
    assert unknown == ["X", "Z"]
    assert changes == [ModeChange(True, "o", "dave")]


def test_missing_arguments_give_none_and_extra_ones_are_ignored() -> None:
    changes, _ = parse_mode_string("+ov", ["erin"])
    assert changes == [ModeChange(True, "o", "erin"), ModeChange(True, "v", None)]
    changes, _ = parse_mode_string("+i", ["extra", "args"])
    assert changes == [ModeChange(True, "i", None)]


def test_empty_and_sign_only_strings() -> None:
    assert parse_mode_string("", []) == ([], [])
    assert parse_mode_string("+-+", ["x"]) == ([], [])
