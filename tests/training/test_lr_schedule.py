"""``--lr-schedule linear``: Adam's learning rate falls linearly from ``--learning-rate`` to 0
at the run's last planned step (``--epochs`` x steps per epoch), read off the optimizer's step
count, which checkpoints save: a resumed run continues the same decay."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import keras
import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, train_config_from_args, train_main
from textvae.data import StoreSpec
from textvae.testing import TINY_TRAIN_ARGS
from textvae.training.callbacks import RunCheckpoint
from textvae.training.run import RunDir
from textvae.training.trainer import _learning_rate

LR = 0.01
STEPS = 10  # per epoch: 76 of the 80 training reviews (5% held out) in batches of 8
# Eager: tracing the tiny model takes longer than training it.
TINY = [*TINY_TRAIN_ARGS, "--run-eagerly", "--lr-schedule", "linear", "--learning-rate", str(LR)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from textvae.data import build_store
    from textvae.data.discover import open_corpus
    from textvae.testing import random_reviews, write_jsonl

    root = tmp_path_factory.mktemp("lr")
    rng = np.random.default_rng(7)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 80))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12))
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    return build_store(root / "s.zarr", open_corpus(root / "c"), spec=spec).path


def _train(store: str, out, *extra: str) -> int:
    return train_main(["--data", store, "--out", str(out), *TINY, *extra])


@contextmanager
def _learning_rates(stop_at: int | None = None):
    """``[(step, learning rate after it)]`` of every training step; at step ``stop_at`` the run
    stops as on SIGTERM (saves mid-epoch, exits 143)."""
    seen: list[tuple[int, float]] = []
    original = RunCheckpoint.on_train_batch_end

    def record(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        seen.append((step, float(keras.ops.convert_to_numpy(optimizer.learning_rate))))
        if step == stop_at:
            self.stop.signum = signal.SIGTERM
        return original(self, batch, logs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunCheckpoint, "on_train_batch_end", record)
        yield seen


def _assert_linear(seen: list[tuple[int, float]], total: int) -> None:
    steps = np.array([step for step, _ in seen])
    rates = np.array([rate for _, rate in seen])
    np.testing.assert_allclose(rates, LR * (1 - steps / total), rtol=1e-5, atol=1e-9)


def test_the_learning_rate_falls_linearly_to_zero_at_the_last_step(store, tmp_path):
    with _learning_rates() as seen:
        assert _train(store, tmp_path / "run", "--epochs", "2") == 0
    assert [step for step, _ in seen] == list(range(1, 2 * STEPS + 1))
    _assert_linear(seen, 2 * STEPS)
    assert seen[-1][1] == 0.0
    last = RunDir(tmp_path / "run").load_model("last.keras")  # the schedule is saved with it
    assert int(last.optimizer.iterations.numpy()) == 2 * STEPS
    assert float(keras.ops.convert_to_numpy(last.optimizer.learning_rate)) == 0.0


def test_a_resumed_run_continues_the_same_decay(store, tmp_path):
    out = tmp_path / "run"
    with _learning_rates(stop_at=13) as before:  # mid-way through the second epoch
        assert _train(store, out, "--epochs", "2") == 128 + signal.SIGTERM
    with _learning_rates() as after:
        assert _train(store, out, "--epochs", "2", "--resume") == 0
    assert [step for step, _ in before + after] == list(range(1, 2 * STEPS + 1))
    _assert_linear(before + after, 2 * STEPS)
    assert after[-1][1] == 0.0


def test_resuming_with_more_epochs_stretches_the_decay_to_the_new_end(store, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(store, out, "--epochs", "1") == 0
    with _learning_rates() as seen:
        assert _train(store, out, "--epochs", "3", "--resume") == 0
    assert [step for step, _ in seen] == list(range(STEPS + 1, 3 * STEPS + 1))
    _assert_linear(seen, 3 * STEPS)
    assert "over 30 steps, this run's (3 epochs of 10)" in capsys.readouterr().out


def test_resuming_with_the_other_schedule_is_refused(store, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(store, out, "--epochs", "1") == 0
    capsys.readouterr()
    assert _train(store, out, "--epochs", "2", "--resume", "--lr-schedule", "constant") == (
        EXIT_USER_ERROR
    )
    err = capsys.readouterr().err
    assert "lr_schedule=linear" in err and "lr_schedule=constant" in err


def test_a_constant_learning_rate_is_the_number_itself():
    config = train_config_from_args(["--learning-rate", "0.002", "--epochs", "3"])
    assert config.model.lr_schedule == "constant"
    assert _learning_rate(config, 7) == 0.002
    linear = _learning_rate(config.replace(lr_schedule="linear"), 7)
    assert isinstance(linear, keras.optimizers.schedules.PolynomialDecay)
    assert linear.decay_steps == 21 and linear.end_learning_rate == 0 and linear.power == 1
    np.testing.assert_allclose(float(linear(7)), 0.002 * (1 - 7 / 21), rtol=1e-6)
