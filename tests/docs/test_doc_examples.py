"""Every Python example of the README and the docs site, run as written.

Every ```python block of ``README.md`` and ``docs/**/*.md`` follows a marker line:

    <!-- example: NAME -->                    runs under Keras' default backend (TensorFlow)
    <!-- example: NAME backend=jax -->        runs with KERAS_BACKEND=jax (or torch, tensorflow)
    <!-- example: NAME setup=imdb -->         runs beside the files a setup makes first

A block without a marker fails :func:`test_every_python_block_is_an_example`: an example the
tests do not run is an example that rots. Each runs in an empty temporary folder, as a user
would paste it into a file: in this process when Keras is already imported here on the
example's backend, else in a fresh process (Keras reads ``KERAS_BACKEND`` once, at import).
The setups stand in for what a reader has made by then (:data:`SETUPS`); an example whose
backend is not installed is skipped (torch is not in the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(
    r"<!-- example: (?P<name>[\w-]+)(?: backend=(?P<backend>\w+))?(?: setup=(?P<setup>\w+))? -->"
)
BACKENDS = ("tensorflow", "jax", "torch")
#: What each setup makes in the example's folder before it runs, as the docs describe it.
SETUPS = {
    # `textvae-ingest IMDB imdb.zarr --vocab 20000 --max-len 300`, in miniature: the shape and
    # vocabulary of IMDB's store, random ids, 256 train and 64 test reviews.
    "imdb": "make_store('imdb.zarr', rows={'train': 256, 'test': 64}, vocab_size=20000,"
    " max_len=300, chunk_rows=64)",
    # A corpus folder of JSONL files, as an aclImdb folder or IMDB's JSONL files would be.
    "corpus": "write_jsonl('corpus/reviews_train.jsonl', random_reviews(rng, 256));"
    " write_jsonl('corpus/reviews_test.jsonl', random_reviews(rng, 64))",
    # `textvae-train ... --out runs/quick`, in miniature: a tiny model trained for one epoch.
    "run": "write_jsonl('corpus/reviews_train.jsonl', random_reviews(rng, 64));"
    " write_jsonl('corpus/reviews_test.jsonl', random_reviews(rng, 16));"
    " assert train_main(['--data', 'corpus', '--out', 'runs/quick', '--epochs', '1',"
    " '--eval-rows', '8', '--run-eagerly', *TINY_TRAIN_ARGS]) == 0",
}
SETUP_PRELUDE = (
    "import numpy as np\n"
    "from textvae.cli import train_main\n"
    "from textvae.testing import TINY_TRAIN_ARGS, make_store, random_reviews, write_jsonl\n"
    "rng = np.random.default_rng(0)\n"
)


@dataclass(frozen=True)
class Example:
    name: str
    backend: str
    code: str
    line: int  # of the marker, 1-based
    page: str = "README.md"
    setup: str | None = None


def page_examples(text: str, page: str = "README.md") -> list[Example]:
    """Every marked example of ``text``, in order; a marker without a ```python block right
    after it, a duplicate name, an unknown backend or setup raise ``ValueError``."""
    lines = text.splitlines()
    examples: list[Example] = []
    for i, line in enumerate(lines):
        if not line.strip().startswith("<!-- example:"):  # a marker is a line of its own
            continue
        where = f"{page}:{i + 1}"
        match = MARKER.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"{where}: a malformed example marker: {line.strip()!r}")
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```python":
            raise ValueError(f"{where}: an example marker must precede a ```python block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{where}: the example's block is never closed")
        backend = match["backend"] or "tensorflow"
        if backend not in BACKENDS:
            raise ValueError(f"{where}: backend must be one of {BACKENDS}: {backend}")
        if match["setup"] is not None and match["setup"] not in SETUPS:
            raise ValueError(f"{where}: setup must be one of {sorted(SETUPS)}: {match['setup']}")
        if any(e.name == match["name"] for e in examples):
            raise ValueError(f"{where}: a second example named {match['name']!r}")
        code = "\n".join(lines[i + 2 : end])
        examples.append(Example(match["name"], backend, code, i + 1, page, match["setup"]))
    return examples


def unmarked_blocks(text: str) -> list[int]:
    """The 1-based lines of ```python blocks that follow no example marker."""
    lines = text.splitlines()
    return [
        i + 1
        for i, line in enumerate(lines)
        if line.strip() == "```python"
        and not (i > 0 and lines[i - 1].strip().startswith("<!-- example:"))
    ]


def _all_examples() -> list[Example]:
    examples = []
    for path in PAGES:
        page = str(path.relative_to(ROOT))
        examples += page_examples(path.read_text(encoding="utf-8"), page)
    return examples


EXAMPLES = _all_examples()


def test_the_recipes_are_there():
    names = {e.name for e in EXAMPLES}
    assert {"tokenizer-lm", "classifier", "tf-data", "pytorch", "own-fit"} <= names, names
    readme = {e.name for e in EXAMPLES if e.page == "README.md"}
    assert len(readme) >= 2, readme


def test_every_python_block_is_an_example():
    unmarked = {
        str(path.relative_to(ROOT)): lines
        for path in PAGES
        if (lines := unmarked_blocks(path.read_text(encoding="utf-8")))
    }
    assert not unmarked, f"```python blocks without an <!-- example: NAME --> marker: {unmarked}"


def test_example_names_are_unique_across_pages():
    names = [e.name for e in EXAMPLES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_markers_are_parsed_strictly():
    text = (
        "<!-- example: a backend=jax -->\n```python\nx = 1\n```\n"
        "<!-- example: b setup=imdb -->\n```python\n```"
    )
    assert page_examples(text) == [
        Example("a", "jax", "x = 1", 1),
        Example("b", "tensorflow", "", 5, setup="imdb"),
    ]
    assert page_examples("prose naming `<!-- example: NAME -->` inline\n```python\n```") == []
    marked_and_not = "text\n```python\nx = 1\n```\n<!-- example: a -->\n```python\n```"
    assert unmarked_blocks(marked_and_not) == [2]
    for bad, message in [
        ("<!-- example: a -->\ntext\n```python\n```", "must precede"),
        ("<!-- example: a -->\n```python\nx = 1", "never closed"),
        ("<!-- example: a backend=mxnet -->\n```python\n```", "backend must be one of"),
        ("<!-- example: a setup=nope -->\n```python\n```", "setup must be one of"),
        ("<!-- example: a -->\n```python\n```\n<!-- example: a -->\n```python\n```", "second"),
        ("<!-- example: a b -->\n```python\n```", "malformed"),
    ]:
        with pytest.raises(ValueError, match=message):
            page_examples(bad)


def _current_backend() -> str:
    """The backend of Keras in this process (imported here if it is not yet: every test
    process of this suite runs TensorFlow's, the default)."""
    import keras

    return keras.backend.backend()


def _script(example: Example) -> str:
    if example.setup is None:
        return example.code + "\n"
    return f"{SETUP_PRELUDE}{SETUPS[example.setup]}\n# --- the example ---\n{example.code}\n"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_doc_example_runs(example: Example, tmp_path: Path, monkeypatch):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[example.backend]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'textvae[{example.backend}]')")
    code = _script(example)
    # A corpus given to resolve_store or textvae-train is ingested into the cache folder:
    # the example's own, not the user's ~/.cache/textvae.
    monkeypatch.setenv("TEXTVAE_CACHE", str(tmp_path / "cache"))
    script = tmp_path / f"{example.name}.py"
    script.write_text(code, encoding="utf-8")
    if example.backend == _current_backend():
        # This process already has Keras on that backend: run it here, in a fresh namespace in
        # the empty folder, and save a process start (seconds of imports). Warnings stay
        # warnings, as in the user's own script.
        monkeypatch.chdir(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            exec(compile(code, str(script), "exec"), {"__name__": "__main__"})
        return
    env = dict(os.environ, KERAS_BACKEND=example.backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, (
        f"{example.page}:{example.line} example {example.name!r} ({example.backend}) failed:\n"
        + done.stderr[-4000:]
    )
