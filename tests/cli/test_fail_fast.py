"""Mistakes that need no Keras are refused before Keras is imported: one line on stderr, exit
code 2, and neither ``keras`` nor ``tensorflow`` in ``sys.modules`` afterwards (importing
TensorFlow alone takes seconds: this is what makes the answer come at once).

Each command runs in a fresh interpreter, as the console script does, which then reports
whether Keras or TensorFlow was imported. No wall-clock bound: the no-import assertion is the
robust form of "within 2 s" on a shared machine (measured here: about 0.2-0.5 s, against 6.5 s
when the checks came after the import).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from textvae.cli import EXIT_USER_ERROR
from textvae.testing import make_store

# Run main, then say on stdout's last line which heavy modules were imported.
_ENTRY = (
    "import sys; from textvae.cli import {main}; code = {main}(sys.argv[1:]); "
    "print('imported:', sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
    "if m in sys.modules)); sys.exit(code)"
)


def _run(main: str, *argv: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY.format(main=main), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr.strip().splitlines(), done.stdout.strip()


def _a_run(path: Path) -> Path:
    """A folder that holds a finished run, as far as the checks look (files, valid JSON)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"vocab_size": 12}))
    (path / "vocab.json").write_text(json.dumps(["<pad>", "<start>", "<oov>", "a"]))
    (path / "best.keras").write_bytes(b"PK")
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("fast") / "s.zarr"
    make_store(path, rows={"train": 16, "test": 8})
    return str(path)


def _cases(tmp_path: Path, store_path: str) -> dict[str, tuple[str, list[str], str]]:
    """name -> (main, argv, a word the error line must hold)."""
    run = str(_a_run(tmp_path / "run"))
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    no_model = _a_run(tmp_path / "no-model")
    (no_model / "best.keras").unlink()
    return {
        "train --quick --out EXISTING_RUN": ("train_main", ["--quick", "--out", run], "--resume"),
        "sample prior NOT_A_RUN": ("sample_main", ["prior", str(tmp_path / "nope")], "vocab.json"),
        "sample prior, model missing": ("sample_main", ["prior", str(no_model)], "best.keras"),
        "train --out A_FILE": ("train_main", ["--out", str(a_file)], "a-file"),
        "train --resume, nothing to resume": (
            "train_main",
            ["--resume", "--out", str(empty)],
            "no checkpoint",
        ),
        "train --data MISSING": (
            "train_main",
            ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o1")],
            "missing",
        ),
        "train --data STORE of other sizes": (
            "train_main",
            ["--data", store_path, "--vocab", "500", "--out", str(tmp_path / "o2")],
            "500",
        ),
    }


@pytest.mark.slow
def test_mistakes_are_one_line_before_keras(tmp_path, store_path):
    cases = _cases(tmp_path, store_path)
    for name, (main, argv, word) in cases.items():
        code, err, out = _run(main, *argv)
        assert code == EXIT_USER_ERROR, (name, err, out)
        assert len(err) == 1 and err[0].startswith("error: "), (name, err)
        assert word in err[0], (name, err)
        assert out.splitlines()[-1] == "imported: []", (name, out)


@pytest.mark.slow
def test_the_check_would_see_an_import(tmp_path):
    """The probe can fail: a command that gets as far as importing Keras is reported."""
    code, err, out = _run("sample_main", "prior", str(_a_run(tmp_path / "run")))
    assert code == EXIT_USER_ERROR, err  # best.keras is no model: load_model refuses it
    assert "keras" in out.splitlines()[-1], out


def test_stdout_is_line_buffered_for_a_log_file(monkeypatch):
    """Progress lines reach a log file as they are printed (``tail -f`` shows them)."""
    import io

    from textvae import cli

    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert not stream.line_buffering
    monkeypatch.setattr(sys, "stdout", stream)
    cli._lines_as_they_come()
    assert stream.line_buffering
