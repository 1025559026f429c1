"""The run folder's lock: one ``textvae-train`` writes an ``--out`` at a time; readers take none.

The first command runs in a real separate process (``textvae-train`` through ``python -c``),
training for many epochs; the test waits until it holds the lock and has finished an epoch,
then runs the second command in this process. Where the holder only has to be a running
process, the lock is taken by this test process itself (``RunDir.lock``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from textvae.cli import EXIT_USER_ERROR, sample_main, train_config_from_args, train_main
from textvae.data import StoreSpec, build_store, open_corpus
from textvae.errors import OutputDirError, RunLockedError
from textvae.testing import TINY_TRAIN_ARGS, random_reviews, write_jsonl
from textvae.training.run import RunDir

TINY = list(TINY_TRAIN_ARGS)
START_S = 180
CHILD = "import sys; from textvae.cli import train_main; sys.exit(train_main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("lockstore")
    rng = np.random.default_rng(3)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 40))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12))
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    return build_store(root / "s.zarr", open_corpus(root / "c"), spec)


def _args(store, out: Path, *extra: str) -> list[str]:
    return ["--data", store.path, "--out", str(out), *TINY, *extra]


def _lock(out: Path) -> Path:
    return Path(f"{out}.lock")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _owner(pid: int) -> str:
    return f"pid {pid} on {socket.gethostname()}, started "


def _start_training(store, out: Path, log: Path) -> subprocess.Popen:
    """``textvae-train`` on ``out`` in another process, returned once it holds the lock and has
    committed its first epoch (``best.keras`` and ``state.json``)."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *_args(store, out, "--epochs", "100000")],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + START_S
    while not (
        _lock(out).exists() and (out / "best.keras").exists() and (out / "state.json").exists()
    ):
        if proc.poll() is not None:
            pytest.fail(f"textvae-train exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"textvae-train did not finish an epoch in {START_S} s")
        time.sleep(0.05)
    return proc


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_second_command_on_a_training_run_is_refused_then_a_killed_runs_lock_is_taken_over(
    store, tmp_path, capsys
):
    out = tmp_path / "run"
    child = _start_training(store, out, tmp_path / "child.log")
    try:
        owner = _owner(child.pid)
        assert json.loads(_lock(out).read_text())["pid"] == child.pid
        # A second textvae-train, however it is asked, is refused naming the first.
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert train_main(_args(store, out, "--epochs", "2", *extra)) == EXIT_USER_ERROR
            line = _one_error_line(capsys)
            assert f"--out {out} is in use by another textvae-train ({owner}" in line, line
            assert f"delete {_lock(out)}" in line
        # So is train() itself (it takes the lock; the command only looked first).
        config = train_config_from_args(_args(store, out, "--epochs", "2", "--resume"))
        with pytest.raises(RunLockedError, match=f"in use by another textvae-train \\({owner}"):
            from textvae.training import train

            train(config, log=lambda line: None)
        assert child.poll() is None, "the first run was disturbed"
        # A reader takes no lock: it reads the last complete model while the run trains.
        assert sample_main(["prior", str(out), "--n", "3", "--verbose", "0"]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert [line.split(":")[0] for line in printed] == ["0", "1", "2"], printed
        assert sample_main(["prior", str(out), "--n", "2", "--checkpoint", "last.keras"]) == 0
        assert child.poll() is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # kill -9 leaves the lock; the next command takes it over, saying so, and resumes.
    assert _lock(out).exists()
    assert train_main(_args(store, out, "--epochs", "1", "--resume")) == 0
    said = capsys.readouterr().out
    assert f"note: took over the lock {_lock(out)} of a textvae-train that is no longer " in said
    assert f"({owner}" in said
    assert (out / "metrics.json").is_file()
    assert not _lock(out).exists()  # released when the command ends


def test_a_held_run_folder_is_refused_before_keras_is_imported(store, tmp_path):
    out = tmp_path / "run"
    code = (
        "import sys; from textvae.cli import train_main; code = train_main(sys.argv[1:]); "
        "assert 'keras' not in sys.modules, 'keras was imported'; sys.exit(code)"
    )
    with RunDir(out).lock():  # held by this test process, which runs
        done = subprocess.run(
            [sys.executable, "-c", code, *_args(store, out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out "), done.stderr
    assert f"is in use by another textvae-train ({_owner(os.getpid())}" in lines[0]
    assert not _lock(out).exists()


def test_every_spelling_of_a_folder_shares_its_lock(tmp_path, monkeypatch):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    monkeypatch.chdir(tmp_path / "runs" / "a")
    with RunDir(tmp_path / "runs" / "a").lock():
        for spelling in (".", "../a", "../a/", str(tmp_path / "link" / "a")):
            with pytest.raises(RunLockedError, match="in use by another textvae-train"):
                RunDir(spelling).lock().acquire()


def test_a_lock_from_another_host_is_never_taken_over(store, tmp_path, capsys):
    out = tmp_path / "run"
    record = {"pid": 1, "host": "another-host", "started": "2026-01-01T00:00:00+00:00"}
    _lock(out).write_text(json.dumps(record))
    for extra in ([], ["--overwrite"]):
        assert train_main(_args(store, out, *extra)) == EXIT_USER_ERROR
        line = _one_error_line(capsys)
        assert "(pid 1 on another-host, started 2026-01-01T00:00:00+00:00)" in line
        assert f"delete {_lock(out)}" in line
    assert json.loads(_lock(out).read_text()) == record
    assert not out.exists()


def test_a_lock_file_that_is_not_a_textvae_lock_is_refused(store, tmp_path, capsys):
    out = tmp_path / "run"
    _lock(out).write_text("not json")
    assert train_main(_args(store, out)) == EXIT_USER_ERROR
    assert f"{_lock(out)} exists but is not a textvae lock" in _one_error_line(capsys)
    assert _lock(out).read_text() == "not json"


def test_the_lock_is_released_however_the_command_ends(store, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(_args(store, out, "--resume")) == EXIT_USER_ERROR  # nothing to resume
    assert "no checkpoint to resume" in _one_error_line(capsys)
    assert not _lock(out).exists()
    assert train_main(_args(store, out, "--epochs", "1")) == 0
    assert not _lock(out).exists()


def test_a_lock_that_cannot_be_created_is_one_line(store, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputDirError, match="cannot write to --out"):
        RunDir(blocker / "out").lock().acquire()
    assert train_main(_args(store, blocker / "out")) == EXIT_USER_ERROR
    assert "cannot write to --out" in _one_error_line(capsys)


def test_sample_on_a_run_that_has_not_finished_an_epoch_says_it_is_training(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "vocab.json").write_text(json.dumps(["<pad>", "<start>", "<oov>", "good"]))
    (out / "config.json").write_text(json.dumps({"store_attrs": {}}))
    with RunDir(out).lock():
        assert sample_main(["prior", str(out)]) == EXIT_USER_ERROR
        line = _one_error_line(capsys)
    assert f"{out / 'best.keras'} does not exist" in line
    assert f"being written by a textvae-train that is running ({_owner(os.getpid())}" in line
    assert "appears when its first epoch ends" in line
    # Once nobody holds the lock the line points at a run again.
    assert sample_main(["prior", str(out)]) == EXIT_USER_ERROR
    assert "point at the --out folder" in _one_error_line(capsys)


def test_a_checkpoint_removed_while_it_is_read_is_one_line(tmp_path, monkeypatch):
    """A running run deletes ``checkpoint-N.keras`` once it commits the next one: a reader that
    asked for it meets a file gone mid-read (here removed just before Keras opens it)."""
    import keras

    from textvae.errors import CheckpointError

    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint-4.keras").write_bytes(b"PK\x03\x04")
    real = keras.models.load_model

    def removed_then_read(path, *args, **kwargs):
        Path(path).unlink()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", removed_then_read)
    with RunDir(out).lock():
        with pytest.raises(CheckpointError, match="was removed while it was read") as caught:
            RunDir(out).load_model("checkpoint-4.keras")
    assert f"running ({_owner(os.getpid())}" in str(caught.value)
    assert "best.keras and last.keras are always there once written" in str(caught.value)
