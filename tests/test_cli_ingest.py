"""textvae-ingest: builds a store from each reader; bad sources get one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, ingest_main
from textvae.store import TokenStore


def test_ingest_builds_store(tmp_path, corpus_dir, capsys):
    target = tmp_path / "s.zarr"
    code = ingest_main([str(corpus_dir), str(target), "--vocab", "12", "--max-len", "8"])
    assert code == 0
    out = capsys.readouterr()
    assert "train 37" in out.out and "test 11" in out.out
    store = TokenStore.open(target, vocab_size=12, max_len=8)
    assert store.num_rows("train") == 37
    assert "train" in out.err  # progress went to stderr


def test_ingest_refuses_existing_store(tmp_path, corpus_dir, small_store, capsys):
    before = small_store.read("train", slice(None))
    code = ingest_main([str(corpus_dir), small_store.path, "--vocab", "20"])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    np.testing.assert_array_equal(
        TokenStore.open(small_store.path).read("train", slice(None)), before
    )


def _bad_sources(tmp_path):
    missing = tmp_path / "missing"
    latin1 = tmp_path / "latin1" / "x_train.jsonl"
    latin1.parent.mkdir()
    latin1.write_bytes('{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"))
    unlabelled = tmp_path / "nolabel" / "x_train.jsonl"
    unlabelled.parent.mkdir()
    unlabelled.write_text('{"text": "fine film"}\n')
    empty = tmp_path / "empty" / "x_train.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    return {
        "missing": (missing, "missing"),
        "not-utf8": (latin1, "UTF-8"),
        "no-label": (unlabelled, "label"),
        "empty": (empty, "x_train.jsonl"),
    }


@pytest.mark.parametrize("case", ["missing", "not-utf8", "no-label", "empty"])
def test_bad_source_one_line_no_traceback(tmp_path, case, capsys):
    source, word = _bad_sources(tmp_path)[case]
    target = tmp_path / "out.zarr"
    code = ingest_main([str(source), str(target), "--vocab", "10", "--max-len", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER_ERROR
    assert len(err) == 1 and err[0].startswith("error: ") and word in err[0]
    assert not target.exists(), "a failed ingest must not leave a store behind"


def test_console_script_exit_code(tmp_path):
    """The installed entry point: no traceback for a user error, exit code 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from textvae.cli import ingest_main; sys.exit(ingest_main(sys.argv[1:]))",
            str(tmp_path / "nope"),
            str(tmp_path / "s.zarr"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr
    assert "tensorflow" not in proc.stderr.lower()
