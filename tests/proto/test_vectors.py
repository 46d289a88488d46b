"""The shared vectors of the ``irc-parser-tests`` package, run against our protocol functions.

The YAML files in ``parser_tests/data`` explain the semantics: a missing atom is None (source), an
empty dict (tags), an empty list (params) or an empty string (userhost parts).
"""

from __future__ import annotations

from typing import Any

import parser_tests.data as vectors
import pytest

from salotto.proto.message import format_line, parse
from salotto.proto.names import is_valid_hostname, mask_match, split_userhost

Vector = dict[str, Any]


def _cases(data: dict[str, Any], label: str) -> list[Any]:
    tests: list[Vector] = data["tests"]
    assert tests, "the vector file is empty: the package layout changed?"
    return [pytest.param(t, id=f"{label}{i}") for i, t in enumerate(tests)]


@pytest.mark.parametrize("vector", _cases(vectors.msg_split, "split"))
def test_msg_split(vector: Vector) -> None:
    atoms = vector["atoms"]
    msg = parse(vector["input"])
    # Our parser upper-cases the command; the vectors keep the case of the input.
    assert msg.command == atoms["verb"].upper()
    assert msg.source == atoms.get("source")
    assert msg.params == (atoms.get("params") or [])
    assert msg.tags == (atoms.get("tags") or {})


@pytest.mark.parametrize("vector", _cases(vectors.msg_join, "join"))
def test_msg_join(vector: Vector) -> None:
    atoms = vector["atoms"]
    line = format_line(
        atoms["verb"],
        atoms.get("params") or [],
        source=atoms.get("source"),
        tags=atoms.get("tags"),
    )
    assert line in vector["matches"]


@pytest.mark.parametrize("vector", _cases(vectors.userhost_split, "userhost"))
def test_userhost_split(vector: Vector) -> None:
    atoms = vector["atoms"]
    expected = (atoms.get("nick", ""), atoms.get("user", ""), atoms.get("host", ""))
    assert tuple(split_userhost(vector["source"])) == expected


@pytest.mark.parametrize("vector", _cases(vectors.validate_hostname, "host"))
def test_validate_hostname(vector: Vector) -> None:
    assert is_valid_hostname(vector["host"]) is vector["valid"]


@pytest.mark.parametrize("vector", _cases(vectors.mask_match, "mask"))
def test_mask_match(vector: Vector) -> None:
    mask = vector["mask"]
    assert [s for s in vector["matches"] if not mask_match(mask, s)] == []
    assert [s for s in vector["fails"] if mask_match(mask, s)] == []
