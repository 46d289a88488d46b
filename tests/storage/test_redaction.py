"""draft/message-redaction in storage: a redacted message is gone from every query, and its msgid is
remembered (so that a journal replayed at startup cannot bring it back) until retention by age."""

from __future__ import annotations

import json
from pathlib import Path

from salotto.config import load_config
from salotto.storage import Ref, Storage, TargetListing
from salotto.storage.export import export_history
from salotto.storage.journal import JOURNAL_FILENAMES, Journal
from salotto.storage.store import InlineReader, Store

from .conftest import message
from .test_history import dm


def _texts(storage: Storage, target: str = "#chan") -> list[str]:
    return [m.text for m in storage.latest(target, 100)]


def test_a_redacted_message_is_gone_from_every_query(storage: Storage) -> None:
    storage.append_messages([message(i, time=1000.0 + i) for i in range(5)])
    assert storage.redact_message("#chan", "m0002") is True
    assert _texts(storage) == ["line 0", "line 1", "line 3", "line 4"]
    assert storage.get_message("m0002") is None
    assert [m.msgid for m in storage.around("#chan", Ref.by_msgid("m0003"), 10)] == ["m0000", "m0001", "m0003", "m0004"]
    assert [m.msgid for m in storage.after("#chan", Ref.by_msgid("m0000"), 10)] == ["m0001", "m0003", "m0004"]
    # A reference to it no longer stands for a position.
    assert storage.before("#chan", Ref.by_msgid("m0002"), 10) == []
    assert storage.redacted(["m0001", "m0002", "nope"]) == {"m0002"}


def test_only_in_its_own_target_and_only_once(storage: Storage) -> None:
    storage.append_messages([message(0), message(1, "#other", msgid="o1")])
    assert storage.redact_message("#chan", "o1") is False  # another channel's message
    assert storage.redact_message("#chan", "unknown") is False
    assert storage.redacted(["o1", "unknown"]) == set()
    assert _texts(storage, "#other") == ["line 1"]
    assert storage.redact_message("#chan", "m0000") is True
    assert storage.redact_message("#chan", "m0000") is False  # already gone
    assert storage.redacted(["m0000"]) == {"m0000"}


def test_server_msgids_are_redacted_as_any_other(storage: Storage) -> None:
    """The server's own msgids (PREFIX-COUNTER) are stored as row ids by SQLite: the same answer."""
    storage.append_messages([message(i, msgid=f"5a1077c0-{i + 1:x}") for i in range(3)])
    assert storage.redact_message("#chan", "5a1077c0-2") is True
    assert [m.msgid for m in storage.latest("#chan", 10)] == ["5a1077c0-1", "5a1077c0-3"]
    assert storage.redacted(["5a1077c0-2", "5a1077c0-3"]) == {"5a1077c0-2"}


def test_a_private_conversation_emptied_by_redaction_is_no_longer_listed(storage: Storage) -> None:
    storage.append_messages([dm(0, "alice", "bob", 10.0), dm(1, "alice", "carol", 20.0)])
    assert storage.redact_message("alice bob", "d0") is True
    assert storage.targets([], "alice", 0.0, 100.0, 10) == [TargetListing("alice carol", "carol", 20.0)]
    assert storage.targets([], "bob", 0.0, 100.0, 10) == []
    storage.append_messages([dm(2, "bob", "alice", 30.0)])  # they talk again: listed again
    assert storage.targets([], "bob", 0.0, 100.0, 10) == [TargetListing("alice bob", "alice", 30.0)]


def test_the_record_of_a_redaction_goes_with_retention_by_age(storage: Storage) -> None:
    storage.append_messages([message(i, time=float(i)) for i in range(10)])
    assert storage.redact_message("#chan", "m0001")
    assert storage.redact_message("#chan", "m0008")
    # Five old messages and one old record; the newer record stays.
    assert storage.prune_history(cutoff=5.0, max_per_target=None) == 5
    assert storage.redacted(["m0001", "m0008"]) == {"m0008"}
    assert storage.prune_history(cutoff=5.0, max_per_target=None) == 0


def test_many_msgids_are_asked_at_once(storage: Storage) -> None:
    storage.append_messages([message(i, time=float(i)) for i in range(1200)])
    for i in range(0, 1200, 100):
        assert storage.redact_message("#chan", f"m{i:04d}")
    asked = [f"m{i:04d}" for i in range(1200)] + ["m0000"]
    assert storage.redacted(asked) == {f"m{i:04d}" for i in range(0, 1200, 100)}
    assert storage.redacted([]) == set()


def test_the_journal_replayed_at_startup_does_not_bring_a_redacted_message_back(
    storage: Storage, tmp_path: Path
) -> None:
    """A journal may still hold a message stored and then redacted (emptying it failed, or a refused batch
    left it there while a later batch stored it): the replay stores the others, not that one."""
    journals = (Journal(tmp_path / JOURNAL_FILENAMES[0]), Journal(tmp_path / JOURNAL_FILENAMES[1]))
    batch = [message(i, time=1000.0 + i) for i in range(4)]
    storage.append_messages(batch[:2])  # stored before the crash...
    journals[0].append(batch)  # ...but still in the journal, with two that were not
    assert storage.redact_message("#chan", "m0001")
    store = Store(load_config(None, {}), storage, InlineReader(storage), 0.0, journals)
    assert store.recover() == 2
    assert _texts(storage) == ["line 0", "line 2", "line 3"]
    assert journals[0].size == 0
    for journal in journals:
        journal.close()


def test_export_leaves_out_a_journal_message_since_redacted(storage: Storage) -> None:
    storage.append_messages([message(0), message(1)])
    assert storage.redact_message("#chan", "m0001")
    lines: list[str] = []
    export_history(storage, [message(1), message(2)], "#chan", lines.append)
    assert [json.loads(line)["msgid"] for line in lines] == ["m0000", "m0002"]
