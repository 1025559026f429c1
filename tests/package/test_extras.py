"""A command whose Keras backend or optional package is missing says in one line which extra
to install (``pip install "textvae[tensorflow]"``), exit code 2, no traceback.

The package is made unimportable inside a fresh interpreter (``sys.modules[name] = None``, what
Python itself does for a blocked import): nothing is uninstalled.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from textvae._startup import BACKEND_EXTRAS, import_extra, missing_extra, require_extra
from textvae.errors import MissingExtraError, TextVAEError

# What the console script runs, as it is named on a user's PATH, with `blocked` unimportable.
_ENTRY = (
    "import sys; sys.modules[{blocked!r}] = None; sys.argv[0] = '/venv/bin/textvae-{command}'; "
    "from textvae.cli import {command}_main; sys.exit({command}_main(sys.argv[1:]))"
)


def _run(tmp_path: Path, command: str, blocked: str, *argv: str, backend: str | None):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no user keras.json choosing a backend
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    code = _ENTRY.format(blocked=blocked, command=command)
    done = subprocess.run(
        # A deprecated flag's warning (the README's --vocab) is not what this test reads.
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return done.returncode, done.stderr.strip().splitlines()


def test_train_without_tensorflow_names_the_extra(tmp_path: Path):
    """Keras' default backend is TensorFlow: the README's main command on a core install."""
    out = tmp_path / "run"
    code, lines = _run(
        tmp_path, "train", "tensorflow", "--quick", "--vocab", "20000", "--out", str(out),
        backend=None,
    )  # fmt: skip
    assert code == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: textvae-train needs a Keras backend"), line
    assert "tensorflow, Keras' default backend," in line
    assert 'pip install "textvae[tensorflow]"' in line
    assert '"textvae[jax]"' in line and '"textvae[torch]"' in line and "KERAS_BACKEND=" in line
    assert not out.exists()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_sample_with_a_missing_chosen_backend_names_its_extra(tmp_path: Path, backend: str):
    package, extra = BACKEND_EXTRAS[backend]
    # A folder that passes the checks made before Keras is imported (a run's files).
    run = tmp_path / "run"
    run.mkdir()
    for name, text in (("vocab.json", '["<pad>", "<start>", "<oov>"]'), ("config.json", "{}")):
        (run / name).write_text(text)
    (run / "best.keras").write_bytes(b"PK")
    code, lines = _run(tmp_path, "sample", package, "prior", str(run), backend=backend)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: textvae-sample needs a Keras backend"), lines
    assert "the backend KERAS_BACKEND names" in lines[0]
    assert f'pip install "textvae[{extra}]"' in lines[0]


def test_missing_extra_is_a_textvae_error_and_an_import_error():
    err = missing_extra("matplotlib", "plot", "textvae-train's latents.png")
    assert isinstance(err, TextVAEError) and isinstance(err, ImportError)
    assert err.name == "matplotlib"
    assert str(err) == (
        "textvae-train's latents.png needs matplotlib, which is not installed: "
        'pip install "textvae[plot]"'
    )
    again = pickle.loads(pickle.dumps(err))  # crosses process boundaries (ingest workers)
    assert type(again) is MissingExtraError and str(again) == str(err)
    assert again.name == "matplotlib"


def test_require_extra_looks_up_without_importing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r'pip install "textvae\[plot\]"'):
        require_extra("matplotlib", "plot", "latents.png")
    with pytest.raises(MissingExtraError, match=r"matplotlib\.pyplot"):
        require_extra("matplotlib.pyplot", "plot", "latents.png")
    require_extra("numpy", "core", "arrays")  # installed: nothing raised
    with pytest.raises(MissingExtraError):
        require_extra("textvae_no_such_package", "s3", "s3:// stores")


def test_import_extra_translates_only_the_package_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import numpy

    assert import_extra("numpy", "core", "arrays") is numpy
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(MissingExtraError, match=r'needs s3fs, .*"textvae\[s3\]"') as info:
        import_extra("s3fs", "s3", "an s3:// store")
    assert isinstance(info.value.__cause__, ImportError)
    # A package that is there but fails on a module of its own: a broken install, not a
    # missing extra, so its own error and traceback stay.
    broken = tmp_path / "textvae_broken_pkg"
    broken.mkdir()
    (broken / "__init__.py").write_text("import textvae_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        import_extra("textvae_broken_pkg", "plot", "x")
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "textvae_absent_dependency"
