"""Where uploaded files' bytes are kept: the :class:`FileStore` seam and its local-directory implementation.

The metadata (who, name, type, size, when) is the database's (``Storage.add_upload``...); a FileStore holds
only bytes under an id. An upload is written to a temporary file first (:meth:`FileStore.temp_file`) while
it arrives, then handed over whole (:meth:`FileStore.put`); so a store on another machine (S3-compatible)
can implement ``put`` as one upload of that file, and ``open`` as a download to a local cache or a stream.

Ids are the random, URL-safe strings salotto makes (:data:`FILE_ID_PATTERN`); a store refuses anything
else, so no id can name a path outside its directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO, Final, Protocol

__all__ = ["FILE_ID_PATTERN", "FileStore", "LocalFileStore", "new_file_id"]

# secrets.token_urlsafe(16): 22 characters, 128 random bits: a file's URL cannot be guessed.
FILE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{22}")


def new_file_id() -> str:
    return secrets.token_urlsafe(16)


class FileStore(Protocol):
    """Bytes of uploaded files by id. Its methods block (disk, network): call them off the event loop,
    except :meth:`temp_file` and writing to it, which are local and short."""

    def temp_file(self) -> tuple[BinaryIO, str]:
        """A new temporary file (open for writing) and its path, for an upload while it arrives."""
        ...

    def put(self, file_id: str, temp_path: str) -> None:
        """Keep the finished temporary file at ``temp_path`` as ``file_id`` (it is moved or consumed)."""
        ...

    def open(self, file_id: str) -> BinaryIO | None:
        """The file for reading, or None when there is none."""
        ...

    def delete(self, file_id: str) -> bool:
        """Delete the file; False when there was none."""
        ...

    def usage(self) -> int:
        """Bytes held in all (for the operator; quotas count the metadata)."""
        ...


class LocalFileStore:
    """Files in a directory (``<data_dir>/files``): ``<id[:2]>/<id>``, temporary ones in ``tmp/`` on the same
    file system so that ``put`` is a rename. Temporary files left by a crash are removed at startup. ``node``:
    a cluster node's name, when the nodes share the directory (docs/cluster.md): its temporary files are in
    ``tmp-<node>/``, so a node that starts removes its own leftovers, not the uploads others are receiving."""

    def __init__(self, root: str | os.PathLike[str], node: str = "") -> None:
        self.root = Path(root)
        self._tmp = self.root / (f"tmp-{node}" if node else "tmp")
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                stale.unlink()

    def _path(self, file_id: str) -> Path:
        if not FILE_ID_PATTERN.fullmatch(file_id):
            raise ValueError(f"not a file id: {file_id!r}")
        return self.root / file_id[:2] / file_id

    def temp_file(self) -> tuple[BinaryIO, str]:
        fd, path = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        return os.fdopen(fd, "wb", buffering=0), path

    def put(self, file_id: str, temp_path: str) -> None:
        path = self._path(file_id)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        os.replace(temp_path, path)

    def open(self, file_id: str) -> BinaryIO | None:
        try:
            return self._path(file_id).open("rb", buffering=0)
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, file_id: str) -> bool:
        try:
            self._path(file_id).unlink()
        except (FileNotFoundError, ValueError):
            return False
        return True

    def usage(self) -> int:
        return sum(path.stat().st_size for path in self.root.glob("??/*") if path.is_file())
