"""Uploaded files' metadata in every backend (the ``uploads`` table), and the local FileStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from salotto.storage import Storage
from salotto.storage.base import UploadRecord
from salotto.storage.files import LocalFileStore, new_file_id


def record(account: str, size: int, created: float = 1000.0, name: str = "a.png") -> UploadRecord:
    return UploadRecord(new_file_id(), account, name, "image/png", size, created)


def test_uploads_are_recorded_counted_per_account_and_held_to_the_quota(storage: Storage) -> None:
    first = record("Alice", 300)
    assert storage.add_upload(first, max_account_bytes=1000)
    assert storage.get_upload(first.id) == first
    assert storage.add_upload(record("alice", 700), max_account_bytes=1000)  # the same account, folded
    assert storage.upload_usage("ALICE") == 1000
    assert not storage.add_upload(record("alice", 1), max_account_bytes=1000)  # over: nothing written
    assert storage.upload_usage("alice") == 1000
    assert storage.add_upload(record("bob", 1000), max_account_bytes=1000)  # a quota each
    assert storage.get_upload(new_file_id()) is None


def test_expired_uploads_are_listed_oldest_first_and_deleted(storage: Storage) -> None:
    old = [record("alice", 1, created=100.0 + i) for i in range(3)]
    new = record("alice", 1, created=5000.0)
    for item in [new, *old]:
        assert storage.add_upload(item, max_account_bytes=10)
    assert storage.expired_uploads(1000.0, 2) == [old[0].id, old[1].id]
    assert storage.delete_uploads(storage.expired_uploads(1000.0, 10)) == 3
    assert storage.expired_uploads(1000.0, 10) == []
    assert storage.get_upload(new.id) == new
    assert storage.upload_usage("alice") == 1
    assert storage.delete_uploads([]) == 0


def test_local_file_store_keeps_bytes_by_id_and_refuses_other_names(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    file, temp = store.temp_file()
    file.write(b"hello")
    file.close()
    file_id = new_file_id()
    store.put(file_id, temp)
    assert not Path(temp).exists()
    opened = store.open(file_id)
    assert opened is not None
    with opened:
        assert opened.read() == b"hello"
    assert store.usage() == 5
    for bad in ("../../server-secret", "..", "a/b", ""):
        assert store.open(bad) is None
        assert not store.delete(bad)
        with pytest.raises(ValueError):
            store.put(bad, temp)
    assert store.delete(file_id) and store.open(file_id) is None and not store.delete(file_id)
    # A temporary file a crash left behind is gone at the next start.
    _, stale = store.temp_file()
    LocalFileStore(tmp_path / "files")
    assert not Path(stale).exists()


def test_nodes_sharing_the_files_directory_keep_their_own_temporary_files(tmp_path: Path) -> None:
    """docs/cluster.md: the nodes of a cluster may share data_dir/files. A node that (re)starts removes what
    its own crash left, not the uploads another node is receiving right now."""
    first = LocalFileStore(tmp_path / "files", node="one")
    file, temp = first.temp_file()
    file.write(b"arriving")
    LocalFileStore(tmp_path / "files", node="two")  # the other node restarts
    file.close()
    file_id = new_file_id()
    first.put(file_id, temp)  # the upload in progress on the first node completes
    opened = first.open(file_id)
    assert opened is not None
    with opened:
        assert opened.read() == b"arriving"
    _, stale = first.temp_file()
    LocalFileStore(tmp_path / "files", node="one")  # its own leftovers do go
    assert not Path(stale).exists()
