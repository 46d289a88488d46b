"""Numerics: each reply named once, a three-digit code, listed in ``__all__``."""

from __future__ import annotations

import re
from collections import Counter

from salotto.proto import numerics


def _numeric_names() -> list[str]:
    return [name for name in vars(numerics) if name.startswith(("RPL_", "ERR_"))]


def test_numerics_are_three_digit_strings() -> None:
    bad = {name: getattr(numerics, name) for name in _numeric_names()}
    bad = {name: code for name, code in bad.items() if not (isinstance(code, str) and re.fullmatch(r"\d{3}", code))}
    assert bad == {}


def test_each_code_is_named_once() -> None:
    counts = Counter(getattr(numerics, name) for name in _numeric_names())
    assert [code for code, n in counts.items() if n > 1] == []


def test_well_known_codes() -> None:
    assert numerics.RPL_WELCOME == "001"
    assert numerics.RPL_ISUPPORT == "005"
    assert numerics.ERR_NICKNAMEINUSE == "433"
    assert numerics.ERR_INPUTTOOLONG == "417"


def test_every_numeric_is_exported() -> None:
    assert sorted(_numeric_names()) == sorted(numerics.__all__)
