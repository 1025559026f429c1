"""The public API: every exported name resolves, ``import textvae`` stays free of TensorFlow, and
``textvae.__version__`` is the installed distribution's version."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import textvae

ROOT = Path(__file__).resolve().parents[2]


def test_import_does_not_load_tensorflow():
    code = "import sys, textvae; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_every_exported_name_resolves_the_same_way_twice():
    first = {name: getattr(textvae, name) for name in textvae.__all__}
    assert all(getattr(textvae, name) is value for name, value in first.items())
    # The Sequence lives in its wing, not at the top (the top only re-exports it).
    assert textvae.OneHotSequence.__module__.startswith("textvae.batching.")


def test_version_is_the_installed_distributions():
    assert textvae.__version__ == importlib.metadata.version("textvae")


def test_installed_version_is_this_checkouts():
    """After ``pip install -e .`` of this checkout (CI), the metadata pyproject.toml gives."""
    mine = [
        dist
        for dist in importlib.metadata.distributions(name="textvae")
        if _installed_from(dist) == ROOT
    ]
    if not mine:
        pytest.skip(f"textvae is not installed from {ROOT}")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = mine[0]
    assert dist.version == project["version"] == textvae.__version__
    assert dist.metadata["Requires-Python"] == project["requires-python"]


def _installed_from(dist: importlib.metadata.Distribution) -> Path | None:
    """The folder a distribution was installed from (pip's direct_url.json), if it says."""
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    return Path(url.removeprefix("file://")).resolve() if url.startswith("file://") else None
