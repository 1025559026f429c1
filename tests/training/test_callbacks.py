"""textvae.training.callbacks: EpochSync under model.fit, RunCheckpoint's files and their order."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal

import keras
import numpy as np
import pytest

from textvae.errors import CheckpointError, TrainingInterrupted
from textvae.training.callbacks import (
    SELECTION,
    EpochSync,
    RunCheckpoint,
    restore_seed_states,
    seed_state_variables,
    selection_score,
)
from textvae.training.preemption import StopOnSignal
from textvae.training.run import BEST, HISTORY, LAST, STATE, RunDir


def _tiny_model(max_len: int = 16) -> keras.Model:
    ids = keras.Input((max_len,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(12, 4)(ids))
    model = keras.Model(ids, {"sentiment": keras.layers.Dense(1, name="sentiment")(h)})
    model.compile("sgd", loss={"sentiment": "mse"})
    return model


def test_fit_epoch_k_reads_sequence_epoch_k(small_store):
    """Keras calls on_epoch_end once more than it runs epochs; EpochSync pins epoch k of fit to
    epoch k of the Sequence, so a resumed run reads what an unbroken one would."""
    from textvae.batching.sequence import OneHotSequence

    class Recording(OneHotSequence):
        def __getitem__(self, index):
            self.fetched.append((self.epoch, int(index)))
            return super().__getitem__(index)

    seq = Recording(small_store, "train", 8, targets="sparse", reconstruction_name=None)
    seq.fetched = []
    model = _tiny_model(small_store.max_len)
    model.fit(seq, epochs=2, verbose=0, shuffle=False, callbacks=[EpochSync(seq)])
    for epoch in (0, 1):
        served = {i for e, i in seq.fetched if e == epoch}
        assert served == set(range(len(seq))), f"fit epoch {epoch} read sequence epoch {epoch}"


def test_run_checkpoint_keeps_the_best_and_the_last_model(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare()
    model = _tiny_model()
    callback = RunCheckpoint(run)
    callback.set_model(model)
    callback.on_train_begin()
    weights = {}
    for epoch, loss in enumerate([3.0, 2.0, 2.5, float("nan")]):
        model.get_layer("sentiment").bias.assign([float(epoch)])  # tells the saves apart
        weights[epoch] = float(epoch)
        callback.on_epoch_end(epoch, {"loss": loss, "kl": 0.5})
        assert json.loads(run.file(STATE).read_text())["epochs_done"] == epoch + 1
        assert run.training_state().checkpoint == LAST  # the epoch's end is last.keras

    def bias(name: str) -> float:
        return float(keras.models.load_model(run.file(name)).get_layer("sentiment").bias[0])

    assert bias(BEST) == 1.0  # epoch 1 had the lowest loss; NaN never counts as lower
    assert bias(LAST) == 3.0
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["loss"] for r in rows] == ["3.0", "2.0", "2.5", "nan"]
    assert not list(run.path.glob("*.tmp*"))  # atomic saves leave no temporary file

    # Not a textvae model: refused when a run loads it.
    with pytest.raises(CheckpointError, match="not a textvae model"):
        run.load_model(LAST)


def test_run_checkpoint_under_fit_starts_or_continues_the_history(tmp_path, rng):
    run = RunDir(tmp_path / "run")
    run.prepare()
    x = rng.integers(0, 12, size=(8, 16)).astype("int32")
    y = {"sentiment": rng.random((8, 1)).astype("float32")}
    model = _tiny_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[RunCheckpoint(run)])
    model.fit(
        x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=[RunCheckpoint(run, append=True)]
    )
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert run.read_state() == 3
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunCheckpoint(run)])
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0"]  # a new session starts the file again
    np.testing.assert_allclose(
        keras.models.load_model(run.file(LAST)).get_weights()[0], model.get_weights()[0]
    )


@pytest.fixture
def sigint_as_in_a_terminal():
    """SIGINT raises KeyboardInterrupt, as in a Python started from a terminal, whatever the
    suite inherited: a background job (``cmd &`` in a script) starts with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_stop_on_signal_records_the_first_signal_then_steps_aside(sigint_as_in_a_terminal):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)  # handled before the next line runs
        assert stop.requested and stop.signum == signal.SIGINT and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # a second one acts as without StopOnSignal
            os.kill(os.getpid(), signal.SIGINT)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


class _SignalAfter(keras.callbacks.Callback):
    """Sends SIGTERM to this process at the end of batch ``batch``."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_saves_mid_epoch_and_the_epoch_resumes_with_all_its_logs(tmp_path, rng):
    x = rng.integers(0, 12, size=(12, 16)).astype("int32")
    y = {"sentiment": rng.random((12, 1)).astype("float32")}
    fit = {"batch_size": 2, "epochs": 1, "verbose": 0, "shuffle": False}
    reference = _tiny_model()
    start = reference.get_weights()
    reference_run = RunDir(tmp_path / "reference")
    reference_run.prepare()
    reference.fit(x, y, **fit, callbacks=[RunCheckpoint(reference_run)])

    run = RunDir(tmp_path / "run")
    run.prepare()
    model = _tiny_model()
    model.set_weights(start)
    with StopOnSignal() as stop:
        callbacks = [_SignalAfter(3), RunCheckpoint(run, stop=stop)]
        with pytest.raises(TrainingInterrupted) as caught:
            model.fit(x, y, **fit, callbacks=callbacks)
    message = str(caught.value)
    assert message.startswith("SIGTERM: saved the training state at epoch 1, batch 4 of 6 (step 4)")
    assert caught.value.signum == signal.SIGTERM and caught.value.step == 4
    state = run.training_state()
    assert (state.epochs_done, state.batches_done, state.step) == (0, 4, 4)
    assert state.checkpoint == "checkpoint-4.keras" and state.metric_states
    assert not run.file(HISTORY).exists()  # no epoch finished

    # Resume: the saved model, the remaining 2 batches, the saved state.
    resumed = keras.models.load_model(run.file(state.checkpoint))
    assert int(resumed.optimizer.iterations.numpy()) == 4
    rest = {k: v[8:] for k, v in y.items()}
    callback = RunCheckpoint(run, append=True, resume=state)
    resumed.fit(x[8:], rest, **fit, callbacks=[callback])
    assert run.read_state() == 1 and run.training_state().step == 6
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    want = list(csv.DictReader(reference_run.file(HISTORY).read_text().splitlines()))
    assert float(rows[0]["loss"]) == pytest.approx(float(want[0]["loss"]), rel=1e-6)
    for a, b in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize(
    ("every", "steps_seen"),
    [({"every_steps": 2}, [None, 2, 2, 4, 4]), ({"every_seconds": 0.0}, [1, 2, 3, 4, 4])],
    ids=["steps", "seconds"],
)
def test_checkpoints_on_schedule_and_none_on_an_epochs_last_step(tmp_path, rng, every, steps_seen):
    run = RunDir(tmp_path / "run")
    run.prepare()
    x = rng.integers(0, 12, size=(10, 16)).astype("int32")
    y = {"sentiment": rng.random((10, 1)).astype("float32")}
    committed = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            committed.append(run.training_state().step if run.file(STATE).exists() else None)

    callbacks = [RunCheckpoint(run, **every), Watch()]
    _tiny_model().fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)
    assert committed == steps_seen  # batch 5 is the epoch's last: the epoch's end saves it
    assert run.training_state().step == 5 and run.training_state().checkpoint == LAST


def test_seed_states_are_left_out_of_keras_files_and_restored(tmp_path, rng):
    x = keras.Input((4,))
    h = keras.layers.Dropout(0.5, seed=3)(keras.layers.Dense(4)(x))
    model = keras.Model(x, keras.layers.Dense(1)(h))
    model.compile("sgd", "mse")
    model.fit(rng.random((4, 4)), rng.random((4, 1)), batch_size=2, verbose=0)
    states = [v.numpy().tolist() for v in seed_state_variables(model)]
    assert states == [[3, 2]]  # the dropout's stream after two steps
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [v.numpy().tolist() for v in seed_state_variables(loaded)] == [[3, 0]]
    restore_seed_states(loaded, states)
    assert [v.numpy().tolist() for v in seed_state_variables(loaded)] == states
    with pytest.raises(ValueError, match="another model"):
        restore_seed_states(loaded, states + states)


#: (val_loss, val_sentiment_accuracy) of five epochs: epoch 2 has the lowest loss but loses 4
#: points of accuracy for 1% of loss; epoch 3 is within 0.6% of its loss and the most accurate.
_HISTORY = [(100.0, 0.80), (90.0, 0.88), (89.0, 0.84), (89.5, 0.885), (float("nan"), 0.99)]


def _epoch_logs(val_loss: float, accuracy: float) -> dict[str, float]:
    return {"loss": 2 * val_loss, "val_loss": val_loss, "val_sentiment_accuracy": accuracy}


def test_selection_score_weighs_a_point_of_accuracy_as_one_percent_of_loss():
    assert selection_score({"val_loss": 100.0, "val_sentiment_accuracy": 0.8}) == pytest.approx(
        np.log(100.0) - 0.8
    )
    # 1% less loss is worth the same as one point more accuracy
    worse_loss = selection_score({"val_loss": 101.0, "val_sentiment_accuracy": 0.81})
    assert worse_loss == pytest.approx(np.log(100.0) - 0.8, abs=1e-4)
    assert selection_score({"loss": 3.0}) is None  # no validation
    assert np.isnan(selection_score({"val_loss": float("nan"), "val_sentiment_accuracy": 0.9}))
    assert np.isnan(selection_score({"val_loss": 0.0}))
    # no labelled validation review: the loss alone
    nan_accuracy = {"val_loss": 50.0, "val_sentiment_accuracy": float("nan")}
    assert selection_score(nan_accuracy) == pytest.approx(np.log(50.0))
    scores = [selection_score(_epoch_logs(*epoch)) for epoch in _HISTORY]
    assert int(np.nanargmin(scores)) == 3
    assert int(np.nanargmin([loss for loss, _ in _HISTORY])) == 2  # what val_loss would choose


def _bias(run: RunDir, name: str) -> float:
    return float(keras.models.load_model(run.file(name)).get_layer("sentiment").bias[0])


def _train_epochs(callback: RunCheckpoint, model: keras.Model, epochs: range) -> None:
    for epoch in epochs:
        model.get_layer("sentiment").bias.assign([float(epoch)])  # tells the saves apart
        callback.on_epoch_end(epoch, _epoch_logs(*_HISTORY[epoch]))


def test_best_keras_is_the_epoch_of_the_lowest_selection_score(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare()
    model = _tiny_model()
    callback = RunCheckpoint(run, monitor=SELECTION)
    callback.set_model(model)
    callback.on_train_begin()
    _train_epochs(callback, model, range(5))
    assert _bias(run, BEST) == 3.0
    state = run.training_state()
    assert state.monitor == SELECTION
    assert state.best == pytest.approx(selection_score(_epoch_logs(*_HISTORY[3])))
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [float(r[SELECTION]) for r in rows[:4]] == pytest.approx(
        [selection_score(_epoch_logs(*epoch)) for epoch in _HISTORY[:4]]
    )
    assert rows[4][SELECTION] == "nan"


def test_a_resumed_run_keeps_the_best_selection_score(tmp_path):
    """Epochs 0-3 in one session, epoch 4 (worse) in the next: best.keras stays epoch 3's; a
    state recorded under another monitor (a run of an older version: val_loss) starts afresh."""
    run = RunDir(tmp_path / "run")
    run.prepare()
    model = _tiny_model()
    first = RunCheckpoint(run, monitor=SELECTION)
    first.set_model(model)
    first.on_train_begin()
    _train_epochs(first, model, range(4))
    state = run.training_state()
    assert state.epochs_done == 4 and _bias(run, BEST) == 3.0

    resumed = RunCheckpoint(run, monitor=SELECTION, append=True, resume=state)
    assert resumed.best == state.best
    resumed.set_model(model)
    resumed.on_train_begin()
    model.get_layer("sentiment").bias.assign([4.0])
    resumed.on_epoch_end(4, _epoch_logs(95.0, 0.86))  # worse than epoch 3
    assert _bias(run, BEST) == 3.0
    assert run.training_state().best == state.best
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4"]

    older = RunCheckpoint(
        run, monitor=SELECTION, append=True, resume=dataclasses.replace(state, monitor="val_loss")
    )
    assert older.best == float("inf")
