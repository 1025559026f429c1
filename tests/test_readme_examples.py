"""The README's "Use it in your own project" examples, run as written.

An example is a ```python block right after a marker line in README.md:

    <!-- example: NAME -->                  runs under Keras' default backend (TensorFlow)
    <!-- example: NAME backend=jax -->      runs with KERAS_BACKEND=jax (or torch, tensorflow)

Each runs in an empty temporary folder, as a user would paste it into a file: in this process
when Keras is already imported here on the example's backend, else in a fresh process (Keras
reads ``KERAS_BACKEND`` once, at import). The examples make their own small data.
An example whose backend is not installed is skipped (torch is not in the ``test`` extra).
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

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- example: (?P<name>[\w-]+)(?: backend=(?P<backend>\w+))? -->")
BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class Example:
    name: str
    backend: str
    code: str
    line: int  # of the marker, 1-based


def readme_examples(text: str) -> list[Example]:
    """Every marked example of ``text``, in order; a marker without a ```python block right
    after it, a duplicate name or an unknown backend raise ``ValueError``."""
    lines = text.splitlines()
    examples: list[Example] = []
    for i, line in enumerate(lines):
        if not line.strip().startswith("<!-- example:"):  # a marker is a line of its own
            continue
        match = MARKER.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"README.md:{i + 1}: a malformed example marker: {line.strip()!r}")
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```python":
            raise ValueError(f"README.md:{i + 1}: an example marker must precede a ```python block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"README.md:{i + 1}: the example's block is never closed")
        backend = match["backend"] or "tensorflow"
        if backend not in BACKENDS:
            raise ValueError(f"README.md:{i + 1}: backend must be one of {BACKENDS}: {backend}")
        if any(e.name == match["name"] for e in examples):
            raise ValueError(f"README.md:{i + 1}: a second example named {match['name']!r}")
        examples.append(Example(match["name"], backend, "\n".join(lines[i + 2 : end]), i + 1))
    return examples


EXAMPLES = readme_examples(README.read_text(encoding="utf-8"))


def test_readme_has_the_recipes():
    names = {e.name for e in EXAMPLES}
    assert {"tokenizer-lm", "classifier", "tf-data", "pytorch"} <= names, names


def test_markers_are_parsed_strictly():
    text = (
        "<!-- example: a backend=jax -->\n```python\nx = 1\n```\n"
        "<!-- example: b -->\n```python\n```"
    )
    assert readme_examples(text) == [
        Example("a", "jax", "x = 1", 1),
        Example("b", "tensorflow", "", 5),
    ]
    assert readme_examples("prose naming `<!-- example: NAME -->` inline\n```python\n```") == []
    for bad, message in [
        ("<!-- example: a -->\ntext\n```python\n```", "must precede"),
        ("<!-- example: a -->\n```python\nx = 1", "never closed"),
        ("<!-- example: a backend=mxnet -->\n```python\n```", "backend must be one of"),
        ("<!-- example: a -->\n```python\n```\n<!-- example: a -->\n```python\n```", "second"),
        ("<!-- example: a b -->\n```python\n```", "malformed"),
    ]:
        with pytest.raises(ValueError, match=message):
            readme_examples(bad)


def _current_backend() -> str:
    """The backend of Keras in this process (imported here if it is not yet: every test
    process of this suite runs TensorFlow's, the default)."""
    import keras

    return keras.backend.backend()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_readme_example_runs(example: Example, tmp_path: Path, monkeypatch):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[example.backend]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'textvae[{example.backend}]')")
    script = tmp_path / f"{example.name}.py"
    script.write_text(example.code + "\n", encoding="utf-8")
    if example.backend == _current_backend():
        # This process already has Keras on that backend: run it here, in a fresh namespace in
        # the empty folder, and save a process start (seconds of imports). Warnings stay
        # warnings, as in the user's own script.
        monkeypatch.chdir(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            exec(compile(example.code, str(script), "exec"), {"__name__": "__main__"})
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
        f"README.md:{example.line} example {example.name!r} ({example.backend}) failed:\n"
        + done.stderr[-4000:]
    )
