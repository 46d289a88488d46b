"""The history journal gives back every whole record it was given, and nothing of a torn or damaged one."""

from __future__ import annotations

import marshal
import os
import resource
import signal
import struct
import zlib
from pathlib import Path

import pytest

from salotto.storage.base import NO_TAGS, HistoryMessage
from salotto.storage.journal import Journal, JournalError


def _message(n: int, **fields: object) -> HistoryMessage:
    values: dict[str, object] = {
        "msgid": f"0badcafe-{n:x}", "target": "#lobby", "time": 1_700_000_000.0 + n, "sender": f"nick{n}!u@h",
        "account": None, "command": "PRIVMSG", "text": f"line {n}",
    }  # fmt: skip
    values.update(fields)
    return HistoryMessage(**values)  # type: ignore[arg-type]


def test_records_come_back_in_order_with_tags_accounts_and_parties(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    first = [_message(1), _message(2, account="alice", tags={"+draft/reply": "0badcafe-1"})]
    second = [_message(3, target="\x00alice\x00bob", parties=("Alice", "bob")), _message(4, command="TAGMSG", text="")]
    journal.append(first)
    journal.append(second)
    assert journal.read() == first + second
    assert journal.read()[0].tags is NO_TAGS  # no tags reads back as the shared empty mapping
    journal.close()
    assert Journal(tmp_path / "j").read() == first + second  # reopened: the file is all there is


def test_a_journal_of_the_previous_release_is_still_read(tmp_path: Path) -> None:
    """A crash left a journal in the format of salotto 0.1.0 (a row per message), and the new release
    starts: what it holds is stored, then records of the new format follow it in the same file."""
    old = [_message(1), _message(2, account="alice", tags={"+draft/reply": "0badcafe-1"}),
           _message(3, target="\x00alice\x00bob", parties=("Alice", "bob"))]
    payload = marshal.dumps((
        [tuple(m[:7]) for m in old],
        [(1, {"+draft/reply": "0badcafe-1"}, None), (2, None, ("Alice", "bob"))],
    ))
    (tmp_path / "j").write_bytes(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    journal = Journal(tmp_path / "j")
    journal.append([_message(4)])
    assert journal.read() == [*old, _message(4)]


def test_a_record_whose_columns_disagree_ends_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([_message(1)])
    m = _message(2)
    payload = marshal.dumps(((m.msgid, m.msgid), (m.target,), (m.time,), (m.sender,), (None,), (m.command,),
                             (m.text,), []))
    with (tmp_path / "j").open("ab") as f:
        f.write(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    journal.append([_message(3)])
    assert journal.read() == [_message(1)]


def test_a_busy_pass_comes_back_whole(tmp_path: Path) -> None:
    """A pass of many messages (written as columns), some with tags, accounts or parties, between two
    quiet ones (a row each)."""
    journal = Journal(tmp_path / "j")
    busy = [
        _message(n, account="alice" if n % 3 == 0 else None, tags={"+draft/react": "x"} if n % 4 == 0 else {},
                 **({"target": "alice bob", "parties": ("Alice", "bob")} if n % 5 == 0 else {}))
        for n in range(2, 40)
    ]
    journal.append([_message(1)])
    journal.append(busy)
    journal.append([_message(40)])
    assert journal.read() == [_message(1), *busy, _message(40)]


def test_clear_empties_the_file_and_appends_start_over(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([_message(1)])
    assert journal.size > 0
    journal.clear()
    assert journal.size == 0 and (tmp_path / "j").stat().st_size == 0
    journal.append([_message(2)])
    assert journal.read() == [_message(2)]
    assert journal.size == (tmp_path / "j").stat().st_size


@pytest.mark.parametrize("cut", [1, 5, 8, 20, -1])
def test_a_torn_last_record_is_left_out(tmp_path: Path, cut: int) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([_message(1), _message(2)])
    whole = journal.size
    journal.append([_message(3)])
    data = (tmp_path / "j").read_bytes()
    (tmp_path / "j").write_bytes(data[: whole + cut] if cut > 0 else data[:cut])
    assert journal.read() == [_message(1), _message(2)]


def test_a_damaged_record_ends_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([_message(1)])
    at = journal.size + 12
    journal.append([_message(2)])
    journal.append([_message(3)])
    data = bytearray((tmp_path / "j").read_bytes())
    data[at] ^= 0xFF
    (tmp_path / "j").write_bytes(bytes(data))
    assert journal.read() == [_message(1)]


@pytest.mark.parametrize(
    "payload",
    [
        b"not a journal at all, just some text that happens to be here\n" * 4,
        b"\x00" * 64,  # a record of length 0 with a CRC that does not match
    ],
)
def test_a_file_of_something_else_reads_as_empty(tmp_path: Path, payload: bytes) -> None:
    (tmp_path / "j").write_bytes(payload)
    assert Journal(tmp_path / "j").read() == []


def test_an_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"cannot open .*missing"):
        Journal(tmp_path / "missing" / "j")
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to fill")
    full = Journal(Path("/dev/full"))  # every write fails with ENOSPC, as on a full disk
    with pytest.raises(JournalError, match="cannot write /dev/full"):
        full.append([_message(1)])
    full.close()


def test_the_file_is_private(tmp_path: Path) -> None:
    Journal(tmp_path / "j").close()
    assert os.stat(tmp_path / "j").st_mode & 0o077 == 0


def test_a_write_cut_short_by_a_full_disk_is_cut_off_again(tmp_path: Path) -> None:
    """The file size limit cuts a record short, as a full disk does: the journal takes the torn part off
    again, so the records before it, and those written once there is room, all come back."""
    journal = Journal(tmp_path / "j")
    journal.append([_message(1)])
    size = journal.size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, not death
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        with pytest.raises(JournalError, match="short write"):
            journal.append([_message(n) for n in range(2, 50)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert os.path.getsize(tmp_path / "j") == journal.size == size
    journal.append([_message(50)])
    assert [m.text for m in journal.read()] == ["line 1", "line 50"]
