"""Stores with unlabelled reviews (label -1): training, validation, evaluation and the CLI count
labelled reviews only in every sentiment loss and metric."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import zarr

from textvae.batching.sequence import OneHotSequence
from textvae.cli import train_main
from textvae.data import StoreSpec, TokenStore, build_store_from_texts
from textvae.model.vae import build_vae
from textvae.testing import TINY_TRAIN_ARGS, random_reviews
from textvae.training.evaluate import evaluate_vae

SPEC = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
EPSILON = keras.config.epsilon()


def _texts_store(path: Path, labelled: tuple[str, ...], rows: int = 40) -> TokenStore:
    rng = np.random.default_rng(7)
    reviews = {"train": random_reviews(rng, rows), "test": random_reviews(rng, 12)}
    return build_store_from_texts(
        path,
        {s: [text for text, _ in r] for s, r in reviews.items()},
        spec=SPEC,
        labels={s: [label for _, label in reviews[s]] for s in labelled},
        num_classes=2,
    )


def _unlabel(store: TokenStore, split: str, rows: slice) -> TokenStore:
    """Mark ``rows`` of ``split`` unlabelled (-1), as a corpus with unlabelled reviews stores them
    (zarr rewrites the chunks and their checksums: the store stays valid)."""
    labels = zarr.open_array(f"{store.path}/{split}/labels", mode="r+")
    values = labels[:]
    values[rows] = -1
    labels[:] = values
    return TokenStore.open(store.path)


@pytest.fixture
def partly_labelled(tmp_path) -> TokenStore:
    """Train: every third review unlabelled; test: every fourth."""
    store = _texts_store(tmp_path / "part.zarr", ("train", "test"))
    _unlabel(store, "train", slice(None, None, 3))
    return _unlabel(store, "test", slice(None, None, 4))


def _bce(labels: np.ndarray, probs: np.ndarray) -> float:
    labels = np.ravel(labels)
    probs = np.clip(np.ravel(probs).astype(np.float64), EPSILON, 1 - EPSILON)
    keep = labels >= 0
    y, p = labels[keep], probs[keep]
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_fit_on_a_partly_labelled_store_counts_the_labelled_rows(partly_labelled):
    store = partly_labelled
    assert (store.labels("train") == -1).sum() == 14
    keras.utils.set_random_seed(0)
    model = build_vae(12, 16, learning_rate=1e-2, embedding_dim=8, hidden=8, dense=8, latent=4)
    seq = OneHotSequence(store, "train", 8, shuffle=True, seed=0)
    history = model.fit(seq, epochs=2, verbose=0, shuffle=False).history
    assert min(history["sentiment_loss"]) >= 0 and min(history["loss"]) > 0
    ids, y = OneHotSequence(store, "train", 40, shuffle=False)[0]
    labels = y["sentiment"]
    assert (labels == -1).any() and (labels >= 0).any()
    got = model.evaluate(ids, y, batch_size=40, verbose=0, return_dict=True)
    probs = np.asarray(model.sentiment_predictor(ids, training=False))
    assert got["sentiment_loss"] == pytest.approx(_bce(labels, probs), rel=1e-4)
    keep = labels.ravel() >= 0
    assert got["sentiment_accuracy"] == pytest.approx(
        np.mean((probs.ravel()[keep] > 0.5) == (labels.ravel()[keep] > 0.5))
    )


def test_evaluation_counts_labelled_reviews_only(partly_labelled, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_vae(12, 16, embedding_dim=8, hidden=8, dense=8, latent=4)
    seq = OneHotSequence(
        partly_labelled, "test", 5, targets="sparse", shuffle=False, drop_remainder=False
    )
    metrics, _, labels = evaluate_vae(model, seq, reconstruct_rows=0, verbose=0)
    ids = partly_labelled.read("test", slice(None)).astype(np.int32)
    probs = np.asarray(model.sentiment_predictor(ids, training=False)).ravel()
    want = partly_labelled.labels("test")
    keep = want >= 0
    assert metrics["reviews"] == 12 and metrics["sentiment_reviews"] == keep.sum() == 9
    assert metrics["sentiment_accuracy"] == pytest.approx(
        np.mean((probs[keep] > 0.5) == (want[keep] > 0))
    )
    np.testing.assert_array_equal(labels, want)  # every review's label, -1 included
    # A split without a labelled review has no sentiment accuracy (not 0, not a guess).
    unlabelled = _texts_store(tmp_path / "none.zarr", ("train",))
    seq = OneHotSequence(unlabelled, "test", 5, targets="sparse", drop_remainder=False)
    metrics, _, _ = evaluate_vae(model, seq, reconstruct_rows=0, verbose=0)
    assert metrics["sentiment_accuracy"] is None and metrics["sentiment_reviews"] == 0


def _history(out: Path) -> list[dict[str, float]]:
    rows = csv.DictReader((out / "history.csv").read_text().splitlines())
    return [{k: float(v) for k, v in row.items()} for row in rows]


def test_the_cli_trains_a_partly_labelled_store(partly_labelled, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--data", partly_labelled.path, "--out", str(out), *TINY_TRAIN_ARGS, "--epochs", "2"]
    assert train_main([*argv, "--val-fraction", "0.25"]) == 0
    assert "training reviews are labelled: the others (-1)" in capsys.readouterr().out
    for epoch in _history(out):
        for key in ("loss", "sentiment_loss", "val_loss", "val_sentiment_loss"):
            assert epoch[key] >= 0, (key, epoch)
        assert 0 <= epoch["sentiment_accuracy"] <= 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentiment_reviews"] == 9 and 0 <= metrics["sentiment_accuracy"] <= 1


def test_a_store_without_train_labels_trains_the_reconstruction_only(tmp_path, capsys):
    """Labels for the test split only (the issue's case): the sentiment head is not trained,
    its loss is 0 and its training accuracy NaN (nothing to count); the test split, labelled,
    is still scored."""
    store = _texts_store(tmp_path / "test-only.zarr", ("test",))
    assert (store.labels("train") == -1).all()
    out = tmp_path / "run"
    argv = ["--data", store.path, "--out", str(out), *TINY_TRAIN_ARGS, "--epochs", "1"]
    assert train_main(argv) == 0
    assert "training the reconstruction only" in capsys.readouterr().out
    (epoch,) = _history(out)
    assert epoch["sentiment_loss"] == 0 and epoch["val_sentiment_loss"] == 0
    assert np.isnan(epoch["sentiment_accuracy"])
    assert epoch["loss"] > 0 and epoch["reconstruction_loss"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentiment_reviews"] == 12 and 0 <= metrics["sentiment_accuracy"] <= 1


def test_an_unlabelled_test_split_prints_no_accuracy(tmp_path, capsys):
    """Labels for the train split only: the test split has no labelled review, so the last
    line says so instead of a number (metrics.json holds null)."""
    store = _texts_store(tmp_path / "train-only.zarr", ("train",))
    assert (store.labels("test") == -1).all()
    out = tmp_path / "run"
    argv = ["--data", store.path, "--out", str(out), *TINY_TRAIN_ARGS, "--epochs", "1"]
    assert train_main(argv) == 0
    assert "sentiment accuracy n/a (no labelled review)" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentiment_accuracy"] is None and metrics["sentiment_reviews"] == 0
