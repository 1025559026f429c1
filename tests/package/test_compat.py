"""Every public name of textvae 0.1.0 still resolves in 0.2, through textvae._compat's one table.

``tests/fixtures/public-api-0.1.0.json`` lists each 0.1.0 module's ``__all__`` as released (read
from the 0.1.0 sources). A name reached by its old path must be the very object its new home
holds, and reaching it by a path that moved must warn with TextVAEDeprecationWarning.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import textvae
from textvae import _compat
from textvae.errors import TextVAEDeprecationWarning

OLD_API: dict[str, list[str]] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "public-api-0.1.0.json").read_text()
)
OLD_NAMES = [
    (module, name)
    for module, names in sorted(OLD_API.items())
    if not module.rpartition(".")[2].startswith("_")
    for name in names
]


def _get(module: str, name: str) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(module), name)
    return value, caught


@pytest.mark.parametrize(("module", "name"), OLD_NAMES, ids=[f"{m}.{n}" for m, n in OLD_NAMES])
def test_every_0_1_name_still_resolves(module: str, name: str) -> None:
    removed = _compat.REMOVED.get(f"{module}.{name}")
    if removed is not None:  # no one-to-one successor: the error says what replaces it
        with pytest.raises(AttributeError, match=r"removed in textvae 0\.2: use") as caught_error:
            _get(module, name)
        assert removed in str(caught_error.value)
        return
    value, caught = _get(module, name)
    deprecations = [w for w in caught if issubclass(w.category, TextVAEDeprecationWarning)]
    moved = module in _compat.MOVED_MODULES or f"{module}.{name}" in _compat.RENAMED
    if moved:
        assert deprecations, f"{module}.{name} moved but gave no TextVAEDeprecationWarning"
        assert all("0.3" in str(w.message) for w in deprecations)
    new = _compat.RENAMED.get(f"{module}.{name}")
    if new is not None:
        home, _, new_name = new.rpartition(".")
        assert value is getattr(importlib.import_module(home), new_name)


def test_a_moved_module_names_its_new_home() -> None:
    sys.modules.pop("textvae.store", None)
    with pytest.warns(TextVAEDeprecationWarning, match=r"textvae\.store.*textvae\.data"):
        old = importlib.import_module("textvae.store")
    from textvae.data import TokenStore

    with pytest.warns(TextVAEDeprecationWarning, match=r"textvae\.store\.TokenStore"):
        assert old.TokenStore is TokenStore
    with pytest.raises(AttributeError, match="no_such_name"):
        old.no_such_name  # noqa: B018


def test_the_old_train_module_path_still_calls_train() -> None:
    from textvae.training import train

    with pytest.warns(TextVAEDeprecationWarning):
        from textvae.train import train as old_train
    assert old_train is train


def test_dir_lists_the_lazy_public_names() -> None:
    listed = dir(textvae)
    assert set(textvae.__all__) <= set(listed)
    for name in textvae.__all__:
        assert getattr(textvae, name) is not None
    # The slim surface: errors other than the root live in textvae.errors.
    assert "StoreCorruptError" not in textvae.__all__
    assert len(textvae.__all__) <= 30


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        textvae.nope  # noqa: B018


def test_import_textvae_imports_neither_keras_nor_zarr() -> None:
    code = (
        "import sys, textvae; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('keras', 'tensorflow', 'zarr', 'numba', 'jax', 'torch')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_deprecated_names_the_replacement_and_the_release() -> None:
    with pytest.warns(TextVAEDeprecationWarning) as caught:
        _compat.deprecated("old_thing", "new_thing")
    assert str(caught[0].message) == (
        f"old_thing is deprecated and will be removed in textvae {_compat.REMOVED_IN}: "
        "use new_thing"
    )
