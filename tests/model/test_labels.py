"""Unlabelled reviews (label -1) weigh 0 in the sentiment loss and accuracy: textvae.model.labels
against NumPy, and a tiny TextVAE trained on partly labelled batches (TensorFlow and JAX)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from textvae.model.labels import LabelledBinaryAccuracy, LabelledBinaryCrossentropy
from textvae.model.vae import build_vae, load_model
from textvae.testing import onehot_reference

VOCAB, MAX_LEN, ROWS = 30, 10, 24
TINY = {"embedding_dim": 8, "hidden": 8, "dense": 8, "latent": 4}
EPSILON = keras.config.epsilon()  # Keras clips probabilities to [eps, 1 - eps]


def bce_of_labelled(labels: np.ndarray, probs: np.ndarray) -> float:
    """The slow, obvious reference: mean binary cross-entropy over the rows labelled 0 or 1."""
    labels, probs = (
        np.ravel(labels),
        np.clip(np.ravel(probs).astype(np.float64), EPSILON, 1 - EPSILON),
    )
    keep = labels >= 0
    y, p = labels[keep], probs[keep]
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def partly_labelled(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids with leading padding and labels (ROWS, 1): 0/1, a third of them -1."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, VOCAB, size=(ROWS, MAX_LEN)).astype(np.int32)
    for row, length in zip(ids, rng.integers(3, MAX_LEN + 1, size=ROWS), strict=True):
        row[: MAX_LEN - length] = 0
    labels = rng.integers(0, 2, size=(ROWS, 1)).astype(np.float32)
    labels[::3] = -1.0
    return ids, labels


def test_loss_is_the_mean_over_labelled_rows():
    y = np.array([[1], [0], [-1], [1], [-1]], np.float32)
    p = np.array([[0.9], [0.2], [0.7], [0.4], [0.1]], np.float32)
    loss = LabelledBinaryCrossentropy()
    assert float(loss(y, p)) == pytest.approx(bce_of_labelled(y, p), rel=1e-6)
    # Only the labelled rows: the same value.
    assert float(loss(y[[0, 1, 3]], p[[0, 1, 3]])) == pytest.approx(float(loss(y, p)), rel=1e-6)
    # The plain cross-entropy reads -1 as a target and goes below 0 on such a row.
    assert float(keras.losses.BinaryCrossentropy()(y[[4]], p[[4]])) < 0
    # A batch with no labelled row carries no loss (not NaN).
    assert float(loss(np.full((3, 1), -1.0, np.float32), p[:3])) == 0.0
    # Given sample weights multiply the labelled weights: a weighted mean of labelled rows.
    w = np.array([1.0, 2.0, 5.0, 1.0, 5.0], np.float32)
    terms = -np.log(np.array([0.9, 0.8, 0.4]))
    expected = (terms * np.array([1.0, 2.0, 1.0])).sum() / 4.0
    assert float(loss(y, p, sample_weight=w)) == pytest.approx(expected, rel=1e-6)
    assert float(loss(y, p, sample_weight=w[:, None])) == pytest.approx(expected, rel=1e-6)


def test_accuracy_counts_labelled_rows_only():
    acc = LabelledBinaryAccuracy(name="accuracy")
    acc.update_state(np.array([[1], [-1], [0]], np.float32), np.array([[0.8], [0.1], [0.9]]))
    assert float(acc.result()) == pytest.approx(0.5)  # 1 of the 2 labelled rows
    acc.update_state(np.array([[-1], [-1]], np.float32), np.array([[0.1], [0.9]]))
    assert float(acc.result()) == pytest.approx(0.5)  # unlabelled batches change nothing
    empty = LabelledBinaryAccuracy()
    empty.update_state(np.array([[-1]], np.float32), np.array([[0.9]]))
    assert np.isnan(float(empty.result()))  # nothing labelled: no accuracy, not 0


def _targets(ids: np.ndarray, labels: np.ndarray) -> dict:
    return {"reconstruction": onehot_reference(ids, VOCAB), "sentiment": labels}


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    ids, labels = partly_labelled()
    model = build_vae(VOCAB, MAX_LEN, learning_rate=1e-2, sentiment_weight=2.0, **TINY)
    history = model.fit(
        ids, _targets(ids, labels), batch_size=8, epochs=4, shuffle=False, verbose=0
    ).history
    return model, ids, labels, history


def test_training_on_partly_labelled_rows_keeps_the_sentiment_loss_the_labelled_rows(trained):
    model, ids, labels, history = trained
    assert min(history["sentiment_loss"]) >= 0
    assert all(np.isfinite(history["loss"])) and min(history["loss"]) > 0
    assert all(0 <= a <= 1 for a in history["sentiment_accuracy"])
    got = model.evaluate(ids, _targets(ids, labels), batch_size=ROWS, verbose=0, return_dict=True)
    probs = np.asarray(model.sentiment_predictor(ids, training=False))
    assert got["sentiment_loss"] == pytest.approx(bce_of_labelled(labels, probs), rel=1e-4)
    keep = np.ravel(labels) >= 0
    assert got["sentiment_accuracy"] == pytest.approx(
        np.mean((probs.ravel()[keep] > 0.5) == (labels.ravel()[keep] > 0.5))
    )
    # The labelled rows alone give the same sentiment loss and accuracy.
    alone = model.evaluate(
        ids[keep], _targets(ids[keep], labels[keep]), batch_size=ROWS, verbose=0, return_dict=True
    )
    assert alone["sentiment_loss"] == pytest.approx(got["sentiment_loss"], rel=1e-5)
    assert alone["sentiment_accuracy"] == pytest.approx(got["sentiment_accuracy"])


def test_unlabelled_rows_do_not_move_the_sentiment_head():
    """With every label -1 the sentiment head gets no gradient: its weights stay as built."""
    keras.utils.set_random_seed(0)
    ids, labels = partly_labelled()
    model = build_vae(VOCAB, MAX_LEN, learning_rate=1e-2, **TINY)
    before = [np.array(w) for w in model.sentiment_head.get_weights()]
    unlabelled = np.full_like(labels, -1.0)
    history = model.fit(ids, _targets(ids, unlabelled), batch_size=8, epochs=1, verbose=0).history
    assert history["sentiment_loss"] == [0.0] and np.isnan(history["sentiment_accuracy"][0])
    for old, new in zip(before, model.sentiment_head.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_saved_model_keeps_the_labelled_loss(trained, tmp_path: Path):
    model, ids, labels, _ = trained
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss["sentiment"], LabelledBinaryCrossentropy)
    y = _targets(ids, labels)
    got = loaded.evaluate(ids, y, batch_size=ROWS, verbose=0, return_dict=True)
    want = model.evaluate(ids, y, batch_size=ROWS, verbose=0, return_dict=True)
    assert got["sentiment_loss"] == pytest.approx(want["sentiment_loss"], rel=1e-5)
    assert got["sentiment_loss"] >= 0


def test_a_checkpoint_saved_with_the_plain_cross_entropy_loads_masked():
    """textvae 0.1 compiled keras' BinaryCrossentropy and BinaryAccuracy: loaded (and resumed)
    they are the labelled ones, so resuming such a run on a partly labelled store is safe."""
    model = load_model(Path(__file__).parents[1] / "fixtures" / "textvae-0.1.0-repeat.keras")
    assert isinstance(model.loss["sentiment"], LabelledBinaryCrossentropy)
    ids = np.ones((4, model.max_len), np.int32) * 3
    labels = np.array([[1], [-1], [0], [-1]], np.float32)
    y = {"reconstruction": ids, "sentiment": labels}
    if model.targets == "onehot":
        y["reconstruction"] = onehot_reference(ids, model.vocab_size)
    got = model.evaluate(ids, y, batch_size=4, verbose=0, return_dict=True)
    probs = np.asarray(model.sentiment_predictor(ids, training=False))
    assert got["sentiment_loss"] == pytest.approx(bce_of_labelled(labels, probs), rel=1e-4)


JAX_CHECK = """
import numpy as np, keras
from tests.model.test_labels import (
    ROWS, TINY, VOCAB, MAX_LEN, _targets, bce_of_labelled, partly_labelled)
from textvae.model.vae import build_vae
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
ids, labels = partly_labelled()
model = build_vae(VOCAB, MAX_LEN, learning_rate=1e-2, **TINY)
history = model.fit(ids, _targets(ids, labels), batch_size=8, epochs=2, verbose=0).history
assert min(history["sentiment_loss"]) >= 0, history
got = model.evaluate(ids, _targets(ids, labels), batch_size=ROWS, verbose=0, return_dict=True)
probs = np.asarray(model.sentiment_predictor(ids, training=False))
want = bce_of_labelled(labels, probs)
assert abs(got["sentiment_loss"] - want) <= 1e-4 * want, (got, want)
print("ok")
"""


def test_the_jax_backend_masks_unlabelled_rows_too():
    pytest.importorskip("jax")
    root = Path(__file__).parents[2]
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(JAX_CHECK)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env=env,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
