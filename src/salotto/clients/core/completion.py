"""Entry helpers with no GUI in them: input history (Up/Down) and Tab completion of nicks and commands."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Completer", "InputHistory"]

# Lines remembered for Up/Down; HexChat and irssi keep a few hundred.
HISTORY_LINES = 200
# Suffix after a nick completed at the start of the line, as most IRC clients do.
NICK_SUFFIX = ": "


class InputHistory:
    """Shell-like history: Up walks back, Down walks forward and finally returns the unsent draft."""

    def __init__(self, limit: int = HISTORY_LINES) -> None:
        self.limit = limit
        self.entries: list[str] = []
        self._pos = 0
        self._draft = ""

    def add(self, text: str) -> None:
        if text and (not self.entries or self.entries[-1] != text):
            self.entries.append(text)
            del self.entries[: -self.limit]
        self._pos = len(self.entries)
        self._draft = ""

    def up(self, current: str) -> str:
        if self._pos == len(self.entries):
            self._draft = current
        if self._pos > 0:
            self._pos -= 1
            return self.entries[self._pos]
        return current if not self.entries else self.entries[0]

    def down(self, current: str) -> str:
        if self._pos >= len(self.entries):
            return current
        self._pos += 1
        return self._draft if self._pos == len(self.entries) else self.entries[self._pos]


@dataclass(slots=True)
class _Cycle:
    prefix_text: str
    start: int
    suffix_text: str
    matches: list[str]
    index: int
    result: tuple[str, int]


class Completer:
    """Tab completion: the word before the cursor becomes the first matching nick (or /command);
    pressing Tab again on the result cycles through the other matches."""

    def __init__(self) -> None:
        self._cycle: _Cycle | None = None

    def reset(self) -> None:
        self._cycle = None

    def complete(
        self, text: str, cursor: int, nicks: Iterable[str], commands: Iterable[str]
    ) -> tuple[str, int] | None:
        """The new text and cursor, or None when nothing matches."""
        cycle = self._cycle
        if cycle is not None and cycle.result == (text, cursor):
            cycle.index = (cycle.index + 1) % len(cycle.matches)
            return self._apply(cycle)
        start = cursor
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        word = text[start:cursor]
        if not word:
            return None
        if start == 0 and word.startswith("/"):
            matches = sorted("/" + c for c in commands if ("/" + c).startswith(word.lower()))
        else:
            stem = word.lstrip("@+")
            matches = sorted((n for n in nicks if n.lower().startswith(stem.lower())), key=str.lower)
        if not matches:
            return None
        self._cycle = _Cycle(text[:start], start, text[cursor:], matches, 0, ("", 0))
        return self._apply(self._cycle)

    @staticmethod
    def _apply(cycle: _Cycle) -> tuple[str, int]:
        match = cycle.matches[cycle.index]
        if match.startswith("/"):
            insert = match + " "
        elif cycle.start == 0:
            insert = match + NICK_SUFFIX
        else:
            insert = match + " "
        rest = cycle.suffix_text.lstrip(" ") if insert.endswith(" ") else cycle.suffix_text
        new_text = cycle.prefix_text + insert + rest
        cycle.result = (new_text, len(cycle.prefix_text) + len(insert))
        return cycle.result
