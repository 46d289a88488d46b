"""Casemapping: one rule, advertised as ``CASEMAPPING`` in ISUPPORT and applied to every nick and
channel comparison (https://modern.ircdocs.horse/#casemapping-parameter)."""

from __future__ import annotations

from typing import Final

__all__ = ["CASEMAPPING", "casefold"]

# rfc1459: ASCII letters plus []\~ are the upper case of {}|^. What most servers and clients assume.
CASEMAPPING: Final = "rfc1459"

_TABLE: Final = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~",
    "abcdefghijklmnopqrstuvwxyz{}|^",
)


def casefold(name: str) -> str:
    """The comparison key of a nick or channel name under :data:`CASEMAPPING`."""
    return name.translate(_TABLE)
