"""textvae.callbacks: EpochSync under model.fit, RunCheckpoint's files and their order."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from textvae.callbacks import EpochSync, RunCheckpoint
from textvae.errors import CheckpointError
from textvae.run import BEST, HISTORY, LAST, STATE, RunDir


def _tiny_model(max_len: int = 16) -> keras.Model:
    ids = keras.Input((max_len,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(12, 4)(ids))
    model = keras.Model(ids, {"sentiment": keras.layers.Dense(1, name="sentiment")(h)})
    model.compile("sgd", loss={"sentiment": "mse"})
    return model


def test_fit_epoch_k_reads_sequence_epoch_k(small_store):
    """Keras calls on_epoch_end once more than it runs epochs; EpochSync pins epoch k of fit to
    epoch k of the Sequence, so a resumed run reads what an unbroken one would."""
    from textvae.sequence import OneHotSequence

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
