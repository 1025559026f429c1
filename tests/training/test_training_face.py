"""The wings' faces (textvae.model, textvae.training): their names; ``train`` the function."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest


@pytest.mark.parametrize("wing", ["textvae.model", "textvae.training"])
def test_every_public_name_resolves_to_its_home(wing):
    face = importlib.import_module(wing)
    for name in face.__all__:
        obj = getattr(face, name)
        assert obj is getattr(importlib.import_module(obj.__module__), name)
    assert dir(face) == sorted(face.__all__)
    with pytest.raises(AttributeError, match=f"module '{wing}' has no attribute 'nothing'"):
        face.nothing  # noqa: B018


def test_train_is_the_function_even_after_its_module_is_imported():
    import textvae.training.trainer
    from textvae.training import sample, train

    assert train is textvae.training.trainer.train and callable(train)
    assert not isinstance(textvae.training.train, types.ModuleType)
    assert isinstance(sample, types.ModuleType)  # a module of the wing, not a face name


def test_the_run_folder_imports_without_keras():
    """``import textvae`` imports textvae.training.run: the face must not pull Keras in."""
    code = "import sys, textvae.training.run, textvae.training; print('keras' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"
