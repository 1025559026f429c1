"""The public API: every exported name resolves, and `import textvae` stays free of TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_tensorflow():
    code = "import sys, textvae; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_every_exported_name_resolves_the_same_way_twice():
    import textvae

    first = {name: getattr(textvae, name) for name in textvae.__all__}
    assert all(getattr(textvae, name) is value for name, value in first.items())
    assert textvae.OneHotSequence.__module__ == "textvae.batching.sequence"
