"""latents.png: drawn with matplotlib, skipped with one line when matplotlib is not installed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from textvae.training import plots
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


def test_robust_limits_clip_far_points_and_count_them(rng):
    xy = rng.normal(size=(1000, 2))
    xy[:3] = [[500.0, 0.0], [0.0, -800.0], [900.0, 900.0]]  # three far points
    xlim, ylim, outside = plots.robust_limits(xy)
    for (low, high), column in zip((xlim, ylim), xy.T, strict=True):
        p1, p99 = np.percentile(column, [1, 99])
        pad = 0.05 * (p99 - p1)
        assert (low, high) == pytest.approx((p1 - pad, p99 + pad))
        assert high < 10 and low > -10  # not stretched to the far points
    inside = (xy[:, 0] >= xlim[0]) & (xy[:, 0] <= xlim[1])
    inside &= (xy[:, 1] >= ylim[0]) & (xy[:, 1] <= ylim[1])
    assert outside == int((~inside).sum())
    assert 3 <= outside <= 40  # the far three, and the tails beyond the widened percentiles


def test_robust_limits_of_a_constant_or_empty_cloud():
    assert plots.robust_limits(np.ones((5, 2))) == ((0.0, 2.0), (0.0, 2.0), 0)
    assert plots.robust_limits(np.zeros((0, 2))) == ((-1.0, 1.0), (-1.0, 1.0), 0)


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.0, "0.0%"),
        (1e-9, "<0.1%"),
        (0.0004, "<0.1%"),
        (0.0005, "0.1%"),
        (0.123, "12.3%"),
        (0.9996, ">99.9%"),
        (1.0, "100.0%"),
    ],
)
def test_variance_share_text(share, text):
    assert plots.share_text(share) == text


def test_view_names_run_split_accuracy_and_outliers(rng):
    z = rng.normal(size=(200, 8)) * [10, 1, 1e-3, 0, 0, 0, 0, 0]  # PC 2 a tiny share
    z[0, 0] = 1e4
    labels = rng.integers(0, 2, 200)
    view = plots.latents_view(z, labels, run="runs/quick", split="test", accuracy=0.8571)
    assert view.title.startswith("runs/quick: 200 test reviews in latent space")
    assert "sentiment accuracy on these reviews: 0.857" in view.title
    assert view.outside >= 1 and f"{view.outside:,} of 200 points" in view.note
    # the far review carries almost all the variance: neither share reads 100% or 0%
    assert (view.xlabel, view.ylabel) == ("PC 1 (>99.9% of variance)", "PC 2 (<0.1% of variance)")
    assert sum(view.shares) == pytest.approx(1.0, abs=1e-6)
    none = plots.latents_view(z, labels, accuracy=None)
    assert none.title.startswith("200 test reviews") and "n/a (no labelled review)" in none.title


def test_plot_latents_with_the_run_named_writes_png(tmp_path, rng):
    z, labels = _latents(rng)
    labels[:5] = -1  # unlabelled reviews are drawn too, in grey
    path = tmp_path / "latents.png"
    plot_latents(z, labels, path, run="r", split="test", accuracy=0.5)
    assert path.read_bytes()[:4] == b"\x89PNG"
