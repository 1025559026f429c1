"""Mid-epoch resume end to end: a run killed (SIGKILL) or stopped (SIGTERM) in the middle of an
epoch and resumed reads the batches an uninterrupted run reads and ends with its weights.

The interrupted runs are subprocesses running ``textvae.cli.train_main``, slowed by a sleep after
every step (so the test can kill them at a chosen step); they print the optimizer's step count
after each batch. The uninterrupted and the resumed runs run in this process, recording which
rows every training batch holds.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import pytest

from textvae.batching.sequence import OneHotSequence
from textvae.cli import train_main
from textvae.data import StoreSpec
from textvae.testing import TINY_TRAIN_ARGS
from textvae.training.run import STATE, RunDir

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 2
# Eager: tracing the tiny model takes longer than training it (graph mode: test_train.py).
TINY = [*TINY_TRAIN_ARGS, "--run-eagerly", "--epochs", str(EPOCHS)]
# The interrupted run: train_main with a sleep after every step, printing the step count first.
CHILD = """
import sys, time
import textvae.training.callbacks as callbacks
batch_end = callbacks.RunCheckpoint.on_train_batch_end
def slowed(self, batch, logs=None):
    print("trained", int(self.model.optimizer.iterations.numpy()), flush=True)
    time.sleep(float(sys.argv[1]))
    return batch_end(self, batch, logs)
callbacks.RunCheckpoint.on_train_batch_end = slowed
from textvae.cli import train_main
from textvae.data import StoreSpec
sys.exit(train_main(sys.argv[2:]))
"""


@contextmanager
def _recording():
    """``{(epoch, batch): rows}`` of every training batch read (validation and evaluation
    sequences do not shuffle and are left out). Keras also reads two batches for their shapes
    before training: textvae-train sets the sequence to the epoch it trains first, so those
    are that epoch's first batches, read again when trained."""
    served: dict[tuple[int, int], tuple[int, ...]] = {}
    original = OneHotSequence.__getitem__

    def record(self, index):
        if self.shuffle:
            rows = tuple(self.batch_rows(index).tolist())
            served[(self.epoch, self.first_batch + int(index))] = rows
        return original(self, index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OneHotSequence, "__getitem__", record)
        yield served


def _args(store: str, out: Path, *extra: str) -> list[str]:
    return ["--data", store, "--out", str(out), *TINY, *extra]


def _start(store: str, out: Path, *extra: str, sleep: float = 0.1) -> subprocess.Popen:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(sleep), *_args(store, out, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_state(process: subprocess.Popen, out: Path, done, timeout: float = 120) -> dict:
    """Poll ``state.json`` until ``done(state)``; the child must still be running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            state = json.loads((out / STATE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = None
        if state is not None and done(state):
            return state
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"no state.json as expected within {timeout} s: {process.communicate()}")


def _history(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "history.csv").read_text().splitlines()))


def _last(out: Path) -> keras.Model:
    return RunDir(out).load_model("last.keras")


def _assert_same_training(resumed: Path, reference: Path) -> None:
    ours, theirs = _last(resumed), _last(reference)
    assert int(ours.optimizer.iterations.numpy()) == int(theirs.optimizer.iterations.numpy())
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rows, expected = _history(resumed), _history(reference)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in expected]
    for row, want in zip(rows, expected, strict=True):  # the stopped epoch's logs cover it all
        for key in want:
            assert float(row[key]) == pytest.approx(float(want[key]), rel=1e-5), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A store (80 train reviews: 76 trained in 10 batches of 8, the last one of 4) and an
    uninterrupted run on it, with the rows of every batch it trained, in order."""
    from textvae.data import build_store
    from textvae.data.discover import open_corpus
    from textvae.testing import random_reviews, write_jsonl

    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(7)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 80))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12))
    store = build_store(
        root / "s.zarr",
        open_corpus(root / "c"),
        spec=StoreSpec(vocab_size=12, max_len=16, chunk_rows=8),
    )
    out = root / "reference"
    with _recording() as served:
        assert train_main(_args(store.path, out)) == 0
    batches = [served[key] for key in sorted(served)]
    assert len(batches) == EPOCHS * 10
    return store.path, out, batches


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_reads_the_same_batches(reference, tmp_path, rng):
    store, reference_out, batches = reference
    out = tmp_path / "killed"
    target = int(rng.integers(1, len(batches)))
    child = _start(store, out, "--checkpoint-steps", "1")
    _wait_for_state(child, out, lambda s: s.get("step", 0) >= target)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    state = json.loads((out / STATE).read_text())
    step = state["step"]
    assert 0 < step < len(batches)
    assert step == state["epochs_done"] * state["steps_per_epoch"] + state["batches_done"]
    # What a kill during a save leaves: a temporary file cut short, an uncommitted checkpoint.
    (out / f"checkpoint-{step + 1}.keras.tmp.keras").write_bytes(b"PK\x03\x04 cut short")
    (out / f"checkpoint-{step + 1}.keras").write_bytes(b"PK\x03\x04 not committed")

    with _recording() as served:
        assert train_main(_args(store, out, "--resume")) == 0
    assert sorted(served) == [(e, b) for e in range(EPOCHS) for b in range(10)][step:]
    assert [served[key] for key in sorted(served)] == batches[step:]
    _assert_same_training(out, reference_out)
    assert not list(out.glob("*.tmp*")) and not list(out.glob("checkpoint-*"))


@pytest.mark.slow
def test_sigterm_saves_and_exits_then_resume_loses_no_step(reference, tmp_path, rng):
    store, reference_out, batches = reference
    out = tmp_path / "stopped"
    # No periodic checkpoint: only the signal saves mid-epoch.
    child = _start(store, out, "--checkpoint-minutes", "0")
    _wait_for_state(child, out, lambda s: s["epochs_done"] >= 1)
    time.sleep(float(rng.uniform(0.0, 0.5)))  # somewhere in the second epoch's 10 steps
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, stderr  # 143, as the signal would end it
    message = [line for line in stderr.splitlines() if line.startswith("interrupted: SIGTERM: ")]
    assert len(message) == 1 and "--resume" in message[0], stderr
    state = json.loads((out / STATE).read_text())
    trained = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("trained")]
    assert state["step"] == trained[-1]  # every step trained before the stop is in the save
    assert f"(step {state['step']})" in message[0]
    assert _last(out) if state["batches_done"] == 0 else (out / state["checkpoint"]).is_file()

    with _recording() as served:
        assert train_main(_args(store, out, "--resume")) == 0
    assert [served[key] for key in sorted(served)] == batches[state["step"] :]
    _assert_same_training(out, reference_out)
