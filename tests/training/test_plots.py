"""latents.png: drawn with matplotlib, skipped with one line when matplotlib is not installed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from textvae.training.plots import plot_latents, plot_latents_if_possible


def _latents(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(50, 4)), rng.integers(0, 2, 50).astype(np.float32)


def test_plot_latents_writes_png(tmp_path, rng):
    path = tmp_path / "latents.png"
    plot_latents(*_latents(rng), path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plot_latents_if_possible(*_latents(rng), tmp_path / "again.png", log=pytest.fail)


def test_without_matplotlib_the_picture_is_skipped_with_one_line(tmp_path, rng, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    lines: list[str] = []
    path = tmp_path / "latents.png"
    assert not plot_latents_if_possible(*_latents(rng), path, log=lines.append)
    assert lines == [
        'latents.png not drawn: matplotlib is not installed (pip install "textvae[plot]")'
    ]
    assert not path.exists()
    with pytest.raises(ModuleNotFoundError):
        plot_latents(*_latents(rng), path)


def test_another_import_error_is_not_taken_for_a_missing_matplotlib(tmp_path, monkeypatch):
    import textvae.training.plots as plots

    def broken(*args):
        raise ImportError("cannot import name 'x' from 'numpy'", name="numpy")

    monkeypatch.setattr(plots, "plot_latents", broken)
    with pytest.raises(ImportError, match="numpy"):
        plots.plot_latents_if_possible(np.zeros((2, 2)), np.zeros(2), tmp_path / "p.png")


def test_the_training_wing_imports_without_matplotlib():
    """Only drawing needs matplotlib: the wing's modules import in a process that has none."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import textvae.training.trainer, textvae.training.evaluate, textvae.training.plots\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
