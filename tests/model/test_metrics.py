"""textvae.model.metrics against hand-counted examples."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.model.metrics import (
    EvalTotals,
    active_units,
    bleu,
    predicted_positions,
    text_ids,
    token_accuracy,
    unigram_f1,
)


def test_active_units_counts_dims_whose_mean_varies():
    z_means = np.array(
        [
            [0.0, 1.0, 5.0, 0.00],
            [1.0, 1.0, 5.1, 0.01],
            [2.0, 1.0, 4.9, 0.02],
            [3.0, 1.0, 5.0, 0.03],
        ]
    )
    # Population variances: 1.25, 0, 0.005, 0.000125.
    assert active_units(z_means) == 1
    assert active_units(z_means, threshold=0.001) == 2
    assert active_units(z_means, threshold=0.0) == 3
    with pytest.raises(ValueError, match="z_means"):
        active_units(np.zeros(4))


def test_token_accuracy_skips_padding_and_first_ids():
    ids = np.array([[0, 0, 5, 6], [0, 7, 8, 9]])
    pred = np.array([[5, 5, 5, 1], [0, 7, 1, 9]])
    # Predicted positions: text after each row's first id: 6 | 8, 9: 3 of them, 1 right (9).
    assert token_accuracy(pred, ids) == pytest.approx(1 / 3)
    # Every position but the first of each row: [0, 1] wrong, [0, 2] right, [0, 3] wrong;
    # [1, 1] right, [1, 2] wrong, [1, 3] right.
    assert token_accuracy(pred, ids, pad_id=None) == pytest.approx(3 / 6)
    probs = np.eye(10)[pred] * 0.9 + 0.01
    assert token_accuracy(probs, ids) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shape"):
        token_accuracy(pred[:, :3], ids)
    with pytest.raises(ValueError, match="no predicted position"):
        token_accuracy(np.zeros((1, 2)), np.array([[0, 1]]))


def test_eval_totals_over_batches_equal_the_metrics_of_all_rows():
    """Two batches summed = the metric functions on the concatenated arrays."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(7, 5))
    ids[:, 0] = 0  # some padding in every row
    pred = np.where(rng.random(ids.shape) < 0.5, ids, (ids + 1) % 6)
    p_true = rng.uniform(0.05, 1.0, size=ids.shape)
    kl = rng.uniform(0, 3, size=7)
    sentiment = rng.random(7)
    labels = rng.integers(0, 2, size=7)
    z_mean = rng.normal(size=(7, 3)) * np.array([1.0, 0.01, 2.0])

    totals = EvalTotals()
    for rows in (slice(0, 4), slice(4, 7)):
        totals.update(
            ids[rows],
            p_true[rows],
            pred[rows],
            kl[rows],
            sentiment[rows],
            labels[rows],
            z_mean[rows],
        )
    result = totals.result()
    keep = predicted_positions(ids)
    assert result["reviews"] == 7 and result["latent"] == 3
    assert result["token_accuracy"] == pytest.approx(token_accuracy(pred, ids))
    assert result["reconstruction_ce_per_token"] == pytest.approx(-np.log(p_true[keep]).mean())
    assert result["kl"] == pytest.approx(kl.mean())
    assert result["active_units"] == active_units(z_mean) == 2
    assert result["sentiment_accuracy"] == pytest.approx(((sentiment > 0.5) == labels).mean())
    np.testing.assert_array_equal(totals.z_means, z_mean)
    np.testing.assert_array_equal(totals.labels, labels)


def test_predicted_positions_leave_out_padding_and_first_ids():
    ids = np.array([[0, 0, 1, 5, 6], [7, 8, 9, 4, 3], [1, 5, 0, 0, 0]])
    want = np.array(
        [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1], [0, 1, 0, 0, 0]],
        dtype=bool,
    )
    np.testing.assert_array_equal(predicted_positions(ids), want)
    np.testing.assert_array_equal(text_ids(ids[0]), [5, 6])


def test_unigram_f1_by_hand():
    # hyp [1 2 2 3] vs ref [2 3 4]: overlap {2: 1, 3: 1} = 2; P = 2/4, R = 2/3, F1 = 4/7.
    assert unigram_f1([[1, 2, 2, 3]], [[2, 3, 4]]) == pytest.approx(4 / 7)
    assert unigram_f1([[1, 2], [5]], [[1, 2], [6]]) == pytest.approx(0.5)


def test_bleu_by_hand_and_extremes():
    ref = [3, 4, 5, 6, 7, 8]
    assert bleu([ref], [ref]) == pytest.approx(1.0)
    assert bleu([[9, 9, 9, 9, 9]], [ref]) == 0.0
    # hyp = ref minus its last id: all n-grams match, brevity penalty exp(1 - 6/5).
    assert bleu([ref[:5]], [ref]) == pytest.approx(np.exp(1 - 6 / 5))
    # Clipping: "3 3 3 3" against "3 4": unigram precision 1/4, no bigram match -> 0; BLEU-1:
    assert bleu([[3, 3, 3, 3]], [[3, 4]], max_n=1) == pytest.approx(0.25)


def test_text_metrics_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="must pair up"):
        bleu([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="must pair up"):
        unigram_f1([], [])
