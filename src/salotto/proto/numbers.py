"""Numbers in parameters (limits, counts, CAP versions): ASCII digits only.

``str.isdigit`` accepts "²" and other digits ``int`` refuses; a client must never turn that gap into an
exception.
"""

from __future__ import annotations

from typing import Final

__all__ = ["parse_positive_int"]

# No parameter of ours needs more: +l, CHATHISTORY limits and WHOWAS counts are far smaller.
_MAX_DIGITS: Final = 9


def parse_positive_int(text: str) -> int | None:
    """``text`` as an integer > 0 when it is 1 to 9 ASCII digits, else None."""
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value > 0 else None
