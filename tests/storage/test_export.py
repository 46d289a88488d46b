"""History as JSON lines (salotto.storage.export): bounds, pages, the journals' messages, the format."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from salotto.storage import HistoryMessage, Storage
from salotto.storage import export as export_module
from salotto.storage.export import export_history, format_time, message_json, parse_time

BASE = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _message(n: int, target: str = "#lobby") -> HistoryMessage:
    return HistoryMessage(f"0badcafe-{n:x}", target, BASE + n, "alice!~a@127.0.0.1", None, "PRIVMSG", f"line {n}")


def _export(storage: Storage, waiting: Sequence[HistoryMessage] = (), **bounds: float) -> list[str]:
    lines: list[str] = []
    count = export_history(storage, waiting, "#lobby", lines.append, **bounds)
    assert count == len(lines)
    return [json.loads(line)["text"] for line in lines]


def test_bounds_are_since_inclusive_until_exclusive(storage: Storage) -> None:
    storage.append_messages([_message(n) for n in range(10)] + [_message(103, "#other")])
    assert _export(storage) == [f"line {n}" for n in range(10)]
    assert _export(storage, since=BASE + 3, until=BASE + 6) == ["line 3", "line 4", "line 5"]
    assert _export(storage, since=BASE + 8) == ["line 8", "line 9"]
    assert _export(storage, until=BASE + 1) == ["line 0"]
    assert _export(storage, since=BASE + 20) == []


def test_every_page_follows_the_one_before(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "PAGE_MESSAGES", 4)
    # Several messages in one millisecond: pages go by msgid, never skipping or repeating one.
    messages = [HistoryMessage(f"0badcafe-{n + 1:x}", "#lobby", BASE + n // 3, "a!b@c", None, "PRIVMSG", f"line {n}")
                for n in range(13)]
    storage.append_messages(messages)
    assert _export(storage) == [f"line {n}" for n in range(13)]
    assert _export(storage, since=BASE + 1, until=BASE + 4) == [f"line {n}" for n in range(3, 12)]


def test_journal_messages_not_stored_yet_come_last_once(storage: Storage) -> None:
    storage.append_messages([_message(n) for n in range(3)])
    waiting = [_message(2), _message(3), _message(4, "#other"), _message(5)]
    assert _export(storage, waiting) == ["line 0", "line 1", "line 2", "line 3", "line 5"]
    assert _export(storage, waiting, since=BASE + 2, until=BASE + 5) == ["line 2", "line 3"]


def test_a_line_of_json() -> None:
    message = HistoryMessage("abc", "#lobby", BASE + 0.0456, "bob!~b@::1", "bob", "NOTICE", "é \"quoted\"\nnext",
                             {"+draft/reply": "xyz"})
    line = message_json(message)
    assert "\n" not in line
    assert json.loads(line) == {
        "msgid": "abc", "time": "2023-11-14T22:13:20.046Z", "sender": "bob!~b@::1", "account": "bob",
        "command": "NOTICE", "text": "é \"quoted\"\nnext", "tags": {"+draft/reply": "xyz"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14", BASE - 22 * 3600 - 13 * 60 - 20),
        ("2023-11-14T22:13:20", BASE),
        ("2023-11-14T22:13:20Z", BASE),
        ("2023-11-14T23:13:20+01:00", BASE),
        ("2023-11-14T22:13:20.5", BASE + 0.5),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == expected


def test_parse_time_refuses_what_is_not_iso() -> None:
    for text in ("yesterday", "14/11/2023", ""):
        with pytest.raises(ValueError):
            parse_time(text)


def test_format_time_rounds_to_the_stored_millisecond() -> None:
    assert format_time(BASE + 0.9996) == "2023-11-14T22:13:21.000Z"
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
