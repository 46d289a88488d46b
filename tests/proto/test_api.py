"""The public API of the protocol layer: every name in ``__all__`` exists."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import salotto.proto


def _proto_modules() -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(salotto.proto.__path__, prefix="salotto.proto.")
    ]


def test_package_all_names_exist() -> None:
    exported = salotto.proto.__all__
    assert exported, "salotto.proto must export its API"
    assert [name for name in exported if not hasattr(salotto.proto, name)] == []
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("module", _proto_modules(), ids=lambda m: m.__name__)
def test_module_all_names_exist(module: ModuleType) -> None:
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{module.__name__} has no __all__"
    assert [name for name in exported if not hasattr(module, name)] == []
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("module", _proto_modules(), ids=lambda m: m.__name__)
def test_public_names_are_exported(module: ModuleType) -> None:
    # A public class or function defined in the module but left out of __all__ is an API leak.
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }
    assert sorted(defined_here - set(module.__all__)) == []


def test_package_reexports_are_the_module_objects() -> None:
    from salotto.proto import casemap, errors, framing, message

    assert salotto.proto.parse is message.parse
    assert salotto.proto.LineReader is framing.LineReader
    assert salotto.proto.casefold is casemap.casefold
    assert salotto.proto.MalformedMessage is errors.MalformedMessage


def test_modules_found() -> None:
    names = {m.__name__.rsplit(".", 1)[1] for m in _proto_modules()}
    assert {"casemap", "errors", "framing", "message", "modes", "names", "numerics"} <= names
