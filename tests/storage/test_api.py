"""The storage layer's public API: ``__all__`` is complete, and every backend implements every method of
the :class:`~salotto.storage.base.Storage` interface with the same parameters; no asyncio in storage/."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import salotto.storage
from salotto.storage import Storage

from .conftest import Reopen


def _modules() -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(salotto.storage.__path__, prefix="salotto.storage.")
    ]


@pytest.mark.parametrize("module", [salotto.storage, *_modules()], ids=lambda m: m.__name__)
def test_all_names_exist(module: ModuleType) -> None:
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{module.__name__} has no __all__"
    assert [name for name in exported if not hasattr(module, name)] == []
    assert len(set(exported)) == len(exported)


def _interface() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(Storage).items()
        if callable(member) and not name.startswith("_")
    }


def test_backend_implements_the_interface(storage: Storage, reopen: Reopen) -> None:
    for name, signature in _interface().items():
        implemented = getattr(type(storage), name, None)
        assert implemented is not None, f"{type(storage).__name__} lacks {name}"
        assert list(inspect.signature(implemented).parameters) == list(signature.parameters), name


def test_storage_never_imports_asyncio() -> None:
    # The worker hands results back through a function it is given; storage stays usable from threads.
    for path in Path(salotto.storage.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "asyncio" for n in names), f"{path.name} imports asyncio"
