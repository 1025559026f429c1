"""Quiet start-up: the commands print none of TensorFlow's C++ start-up lines by default, at
any ``--verbose``, and with a ``TF_CPP_MIN_LOG_LEVEL`` of 1, 2 or 3 the user set; all of them
with ``--show-backend-log`` or a level of 0.

Each command runs in a fresh interpreter (the lines are printed once, when Keras is first
imported), with the environment of a user who set nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from textvae._startup import LOG_LEVEL_ENV
from textvae.cli import EXIT_USER_ERROR

# What the console scripts run (pyproject [project.scripts]), in a fresh interpreter.
_ENTRY = "import sys; from textvae.cli import {main}; sys.exit({main}(sys.argv[1:]))"


def _start(main: str, *argv: str, **env: str) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if k != LOG_LEVEL_ENV}
    return subprocess.Popen(
        [sys.executable, "-c", _ENTRY.format(main=main), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **env},
    )


def _finish(proc: subprocess.Popen) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err.strip().splitlines()


def _keras_noise() -> list[str]:
    """What a bare ``import keras`` prints on stderr here, with nothing set."""
    clean = {k: v for k, v in os.environ.items() if k != LOG_LEVEL_ENV}
    done = subprocess.run(
        [sys.executable, "-c", "import keras"], capture_output=True, text=True, env=clean
    )
    return done.stderr.strip().splitlines()


@pytest.mark.slow
def test_errors_are_one_line_at_default_verbosity(tmp_path: Path):
    """A missing run, a missing store, a usage error: exactly one line each on stderr (most
    are now refused before Keras is imported: test_fail_fast.py checks that)."""
    missing = str(tmp_path / "missing")
    procs = {
        "sample, missing run": _start("sample_main", "prior", missing),
        "train, missing data": _start(
            "train_main", "--data", missing, "--out", str(tmp_path / "o")
        ),
        "train, usage error": _start("train_main", "--batch-size", "0"),
        "ingest, missing corpus": _start("ingest_main", missing, str(tmp_path / "s.zarr")),
    }
    for name, proc in procs.items():
        code, lines = _finish(proc)
        assert code == EXIT_USER_ERROR, (name, lines)
        assert len(lines) == 1 and "error: " in lines[0], (name, lines)


@pytest.mark.slow
def test_show_backend_log_or_a_users_low_level_shows_tensorflows_lines(tmp_path: Path):
    """Showing the lines is its own switch: ``--verbose 2`` and a user's level of 2 keep them
    hidden (either brought them all back before)."""
    noise = _keras_noise()
    if not noise:
        pytest.skip("TensorFlow prints no start-up lines on this machine: nothing to hide")
    # A run folder without its model: refused after Keras is imported, by load_model.
    run = tmp_path / "run"
    run.mkdir()
    (run / "vocab.json").write_text('["<pad>", "<start>", "<oov>", "a"]')
    (run / "config.json").write_text("{}")
    (run / "best.keras").write_text("not a model")
    argv = ("prior", str(run))
    procs = {
        "--show-backend-log": (_start("sample_main", *argv, "--show-backend-log"), True),
        "user's level 0": (_start("sample_main", *argv, **{LOG_LEVEL_ENV: "0"}), True),
        "--verbose 2": (_start("sample_main", *argv, "--verbose", "2"), False),
        "user's level 2": (_start("sample_main", *argv, **{LOG_LEVEL_ENV: "2"}), False),
        "user's level 3": (_start("sample_main", *argv, **{LOG_LEVEL_ENV: "3"}), False),
    }
    for name, (proc, shown) in procs.items():
        code, lines = _finish(proc)
        assert code == EXIT_USER_ERROR, (name, lines)
        assert lines[-1].startswith("error: "), (name, lines)
        if shown:
            assert len(lines) >= len(noise) + 1, (name, noise, lines)
        else:
            assert len(lines) == 1, (name, lines)


@pytest.mark.parametrize(
    ("show", "users_level", "shown", "level"),
    [
        (False, None, False, "3"),
        (True, None, True, None),
        (False, "0", True, "0"),
        (False, "1", False, "1"),
        (False, "2", False, "2"),
        (False, "3", False, "3"),
    ],
    ids=["default", "show-backend-log", "users-0", "users-1", "users-2", "users-3"],
)
def test_import_keras_hides_what_the_backend_writes_to_fd_2(
    tmp_path, show, users_level, shown, level
):
    """The mechanism, with a stand-in ``keras`` that writes to file descriptor 2 as
    TensorFlow's C++ code does (no TensorFlow needed, so this runs in a second). A level the
    user set is never changed."""
    (tmp_path / "keras.py").write_text("import os\nos.write(2, b'I0000 start-up line\\n')\n")
    code = (
        "import os; from textvae._startup import import_keras; "
        f"import_keras(show_backend_log={show}); print(os.environ.get({LOG_LEVEL_ENV!r}))"
    )
    clean = {k: v for k, v in os.environ.items() if k != LOG_LEVEL_ENV}
    path = os.pathsep.join([str(tmp_path), *sys.path])
    env = {**clean, "PYTHONPATH": path, **({LOG_LEVEL_ENV: users_level} if users_level else {})}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert ("start-up line" in done.stderr) == shown, done.stderr
    assert done.stdout.strip() == str(level)
