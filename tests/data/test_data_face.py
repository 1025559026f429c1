"""textvae.data's public face: its names, and what importing and reading costs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import textvae.data

DATA = Path(textvae.data.__file__).parent


def test_every_public_name_resolves_and_is_listed():
    for name in textvae.data.__all__:
        value = getattr(textvae.data, name)
        assert value is not None, name
    assert set(textvae.data.__all__) <= set(dir(textvae.data))
    assert "parallel" not in textvae.data.__all__  # modules stay reachable, not public names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_wing_imports_no_keras_tensorflow_or_config():
    # keras_imdb imports Keras inside download_keras_imdb only (to download, when called).
    for path in sorted(DATA.glob("*.py")):
        for module in _imports(path):
            assert not module.startswith(("tensorflow", "textvae.config")), (path.name, module)
            if module.startswith("keras"):
                assert path.name == "keras_imdb.py", (path.name, module)
            assert not module.startswith(("textvae.batching", "textvae.model")), path.name
            assert not module.startswith(("textvae.training", "textvae.cli")), path.name


#: Run first in a subprocess: ``textvae`` as a bare package, so that what the top-level face
#: imports (its own business) does not hide what this wing imports.
BARE_TEXTVAE = (
    "import sys, types\n"
    "package = types.ModuleType('textvae')\n"
    f"package.__path__ = [{str(DATA.parent)!r}]\n"
    "sys.modules['textvae'] = package\n"
)


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", BARE_TEXTVAE + code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_importing_and_using_the_wing_loads_no_keras_tensorflow_or_config(small_store):
    code = (
        "import textvae.data as d\n"
        "for name in d.__all__: getattr(d, name)\n"
        f"d.TokenStore.open({small_store.path!r}).read('train', [0, 3])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('keras', 'tensorflow'))))\n"
        "print('textvae.config' in sys.modules)\n"
    )
    assert _run(code).splitlines() == ["[]", "False"]


def test_reading_a_store_loads_no_ingest_lock_or_corpus_readers(small_store):
    code = (
        "from textvae.data import TokenStore\n"
        f"store = TokenStore.open({small_store.path!r})\n"
        "store.read('train', [0, 3]); store.labels('test'); store.vocab\n"
        "print(sorted(m for m in sys.modules if m.startswith('textvae.data.')))\n"
    )
    # (zarr itself imports multiprocessing: only textvae's own modules are checked)
    assert _run(code) == str(
        [
            f"textvae.data.{m}"
            for m in ("chunks", "damage", "format", "location", "retry", "store", "vocab")
        ]
    )
