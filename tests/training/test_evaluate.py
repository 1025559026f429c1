"""evaluate_vae against a direct NumPy computation from the model's own sub-models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from textvae.batching.sequence import OneHotSequence
from textvae.data import StoreSpec, build_store_from_ids
from textvae.model.config import RECONSTRUCTION, SAMPLED
from textvae.model.decoding import generate
from textvae.model.generation_metrics import generated_texts, generation_scores
from textvae.model.metrics import bleu, predicted_positions, text_ids, unigram_f1
from textvae.model.vae import build_vae
from textvae.training.evaluate import evaluate_vae, split_sentiment_accuracy


@pytest.fixture(scope="module", params=["autoregressive", "repeat"])
def model(request):
    keras.utils.set_random_seed(0)
    return build_vae(12, 16, embedding_dim=8, hidden=8, dense=8, latent=4, decoder=request.param)


def test_metrics_match_direct_computation(model, small_store):
    seq = OneHotSequence(small_store, "test", 4, targets="sparse", shuffle=False)
    metrics, z, labels = evaluate_vae(model, seq, reconstruct_rows=5, verbose=0)
    ids = small_store.read("test", slice(None)).astype(np.int32)
    z_mean, z_log_var, _ = (np.asarray(t) for t in model.encoder(ids, training=False))
    probs = np.asarray(model.decoder(model.decoder_inputs(z_mean, ids), training=False))
    zeros = np.zeros_like(z_mean)
    probs_z0 = np.asarray(model.decoder(model.decoder_inputs(zeros, ids), training=False))
    keep = predicted_positions(ids)
    assert keep.sum() < (ids != 0).sum()  # the first id of every row is not counted
    p_true = np.take_along_axis(probs, ids[..., None], axis=-1)[..., 0]
    p_true_z0 = np.take_along_axis(probs_z0, ids[..., None], axis=-1)[..., 0]
    ce, ce_z0 = -np.log(p_true[keep]).mean(), -np.log(p_true_z0[keep]).mean()
    np.testing.assert_allclose(metrics["ce_per_token_z0"], ce_z0, rtol=1e-5)
    np.testing.assert_allclose(metrics["z_information"], ce_z0 - ce, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(metrics["perplexity"], np.exp(ce), rtol=1e-5)
    assert metrics["tokens"] == keep.sum()
    sentiment = np.asarray(model.sentiment_head(z_mean)).ravel()
    zm, zlv = z_mean.astype(np.float64), z_log_var.astype(np.float64)
    expected_kl = (0.5 * (np.exp(zlv) + zm**2 - 1.0 - zlv)).sum(axis=1).mean()
    assert metrics["reviews"] == 11
    np.testing.assert_allclose(
        metrics["reconstruction_ce_per_token"], -np.log(p_true[keep]).mean(), rtol=1e-5
    )
    assert metrics["token_accuracy"] == pytest.approx(
        (probs.argmax(-1) == ids)[keep].mean(), abs=1e-9
    )
    # An untrained encoder's KL is near 0: a difference of terms near 1, so float32 rounding
    # (the evaluator's) leaves an absolute error of a few 1e-8 per latent dimension.
    np.testing.assert_allclose(metrics["kl"], expected_kl, rtol=1e-4, atol=1e-6)
    labels_ref = small_store.labels("test")
    assert metrics["sentiment_accuracy"] == pytest.approx(
        ((sentiment > 0.5) == (labels_ref > 0.5)).mean()
    )
    np.testing.assert_allclose(z, z_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, labels_ref)


def test_split_sentiment_accuracy_matches_evaluate_vae(model, small_store):
    # Batches of 4 over 11 rows: the last batch is short.
    whole = split_sentiment_accuracy(model, small_store, "test", batch_size=4, verbose=0)
    seq = OneHotSequence(small_store, "test", 4, targets="sparse", shuffle=False)
    metrics, _, _ = evaluate_vae(model, seq, reconstruct_rows=0, verbose=0)
    assert whole["split_sentiment_reviews"] == metrics["reviews"] == 11
    assert whole["split_sentiment_accuracy"] == pytest.approx(metrics["sentiment_accuracy"])
    ids = small_store.read("test", slice(None)).astype(np.int32)
    predicted = np.asarray(model.sentiment_predictor(ids, training=False)).ravel() > 0.5
    expected = (predicted == (small_store.labels("test") > 0)).mean()
    assert whole["split_sentiment_accuracy"] == pytest.approx(expected)


def test_split_sentiment_accuracy_leaves_out_unlabelled_rows(model, tmp_path):
    rng = np.random.default_rng(0)
    ids = {s: rng.integers(3, 12, size=(6, 16)) for s in ("train", "extra")}
    store = build_store_from_ids(
        tmp_path / "s.zarr",
        ids,
        spec=StoreSpec(vocab_size=12, max_len=16),
        labels={"train": [0, 1] * 3},
    )
    result = split_sentiment_accuracy(model, store, "extra", verbose=0)
    assert result == {"split_sentiment_accuracy": None, "split_sentiment_reviews": 0}
    assert (
        split_sentiment_accuracy(model, store, "train", verbose=0)["split_sentiment_reviews"] == 6
    )


def test_reconstruction_scores_match_direct_computation(model, small_store):
    seq = OneHotSequence(small_store, "test", 4, targets="sparse", shuffle=False)
    metrics, _, _ = evaluate_vae(model, seq, reconstruct_rows=100, verbose=0)
    ids = small_store.read("test", slice(None)).astype(np.int32)  # all 11: fewer than 100
    z_mean = np.asarray(model.encoder(ids, training=False)[0])
    references = [text_ids(row) for row in ids]
    generated = generate(model, z_mean, **RECONSTRUCTION)
    hypotheses = generated_texts(generated)  # up to each row's end
    assert metrics["reconstruct_reviews"] == 11
    assert metrics["reconstruct_unigram_f1"] == pytest.approx(unigram_f1(hypotheses, references))
    assert metrics["reconstruct_bleu4"] == pytest.approx(bleu(hypotheses, references))
    assert 0 <= metrics["reconstruct_sentiment_kept"] <= 1
    scores = generation_scores(generated, "reconstruct")
    assert {k: metrics[k] for k in scores} == scores


def test_prior_scores_are_those_of_the_prior_draws_decoded_as_sampled(model, small_store):
    seq = OneHotSequence(small_store, "test", 4, targets="sparse", shuffle=False)
    metrics, _, _ = evaluate_vae(model, seq, reconstruct_rows=0, prior_samples=20, verbose=0)
    z = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    rows = generate(model, z, seed=0, **SAMPLED)
    assert metrics["prior_samples"] == 20
    scores = generation_scores(rows, "prior")
    assert {k: metrics[k] for k in scores} == scores
    assert not any(k.startswith("reconstruct_") for k in metrics)
