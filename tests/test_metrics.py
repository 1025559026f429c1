"""textvae.metrics against hand-counted examples."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.metrics import EvalTotals, active_units, token_accuracy


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


def test_token_accuracy_skips_padding():
    ids = np.array([[0, 0, 5, 6], [0, 7, 8, 9]])
    pred = np.array([[5, 5, 5, 1], [0, 7, 1, 9]])
    # Non-padding positions: 5 of them, 3 right (5, 7, 9).
    assert token_accuracy(pred, ids) == pytest.approx(3 / 5)
    # Every position: the two padding positions at [0, 0], [0, 1] are wrong, [1, 0] is right.
    assert token_accuracy(pred, ids, pad_id=None) == pytest.approx(4 / 8)
    probs = np.eye(10)[pred] * 0.9 + 0.01
    assert token_accuracy(probs, ids) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="shape"):
        token_accuracy(pred[:, :3], ids)
    with pytest.raises(ValueError, match="padding"):
        token_accuracy(np.zeros((1, 2)), np.zeros((1, 2), dtype=int))


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
    keep = ids != 0
    assert result["reviews"] == 7 and result["latent"] == 3
    assert result["token_accuracy"] == pytest.approx(token_accuracy(pred, ids))
    assert result["reconstruction_ce_per_token"] == pytest.approx(-np.log(p_true[keep]).mean())
    assert result["kl"] == pytest.approx(kl.mean())
    assert result["active_units"] == active_units(z_mean) == 2
    assert result["sentiment_accuracy"] == pytest.approx(((sentiment > 0.5) == labels).mean())
    np.testing.assert_array_equal(totals.z_means, z_mean)
    np.testing.assert_array_equal(totals.labels, labels)
