"""What ``help()`` and ``dir()`` show a user: every face lists its lazy names, and no public
signature shows a default as ``<object object at 0x...>``."""

from __future__ import annotations

import importlib
import inspect

import pytest

FACES = ("textvae", "textvae.data", "textvae.batching", "textvae.model", "textvae.training")


@pytest.mark.parametrize("face", FACES)
def test_dir_lists_every_lazy_name(face: str):
    module = importlib.import_module(face)
    assert set(module.__all__) - {"__version__"} <= set(dir(module))


def _signatures(obj):
    """``obj``'s signature and, for a class, those of its public methods defined here."""
    members = [obj]
    if inspect.isclass(obj):
        members = [obj.__init__]
        members += [
            value
            for name, value in vars(obj).items()
            if not name.startswith("_") and inspect.isfunction(value)
        ]
    for member in members:
        try:
            yield member, inspect.signature(member)
        except (TypeError, ValueError):  # a builtin without a signature
            continue


@pytest.mark.parametrize("face", FACES)
def test_signatures_show_readable_defaults(face: str):
    module = importlib.import_module(face)
    unreadable = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj):
            continue
        for member, signature in _signatures(obj):
            if " object at 0x" in str(signature):
                unreadable.append(f"{face}.{name}: {member.__qualname__}{signature}")
    assert not unreadable, unreadable
