"""Evaluation of a trained text VAE on a split of a token store, and the latent-space picture."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
from keras import ops

from textvae.metrics import EvalTotals
from textvae.model import kl_divergence
from textvae.sequence import OneHotSequence

__all__ = ["evaluate_vae", "plot_latents"]


def _eval_model(model: Any) -> keras.Model:
    """ids -> (z_mean, KL per review, p(true id), arg-max id, sentiment), compiled by
    ``predict``: the (batch, max_len, vocab) probabilities never leave the graph, and the KL
    is the loss's own formula."""
    ids = keras.Input((model.max_len,), dtype="int32")
    z_mean, z_log_var, _ = model.encoder(ids)
    kl = ops.sum(kl_divergence(z_mean, z_log_var), axis=-1)
    probs = model.decoder(z_mean)
    p_true = ops.squeeze(ops.take_along_axis(probs, ops.expand_dims(ids, -1), axis=-1), -1)
    predicted = ops.argmax(probs, axis=-1)
    return keras.Model(ids, [z_mean, kl, p_true, predicted, model.sentiment_head(z_mean)])


def evaluate_vae(
    model: Any,
    sequence: OneHotSequence,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Test metrics of ``model`` over every batch of ``sequence`` (sparse targets suffice).

    Reconstruction uses the latent mean (no sampling noise). The metrics are
    :mod:`textvae.metrics`'. Returns ``(metrics, z_means, labels)`` where ``metrics`` holds

    - ``reconstruction_ce_per_token``: mean cross-entropy (nats) over non-padding positions;
    - ``token_accuracy``: arg-max accuracy over non-padding positions;
    - ``kl``: mean KL(q(z|x) || N(0, I)) in nats per review;
    - ``active_units``: latent dimensions whose z_mean varies across reviews (variance > 0.01);
    - ``latent``: the number of latent dimensions;
    - ``sentiment_accuracy``: accuracy of the sentiment head on the latent mean;
    - ``reviews``: how many reviews were evaluated.
    """
    evaluator = _eval_model(model)
    totals = EvalTotals()
    for i in range(len(sequence)):
        ids, outputs = sequence[i]
        z_mean, kl, p_true, predicted, sentiment = evaluator.predict_on_batch(ids)
        label = outputs[sequence.sentiment_name]
        totals.update(ids, p_true, predicted, kl, sentiment, label, z_mean)
    return totals.result(), totals.z_means, totals.labels


def plot_latents(z_means: np.ndarray, labels: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Scatter of the latent means projected to 2-D with PCA, coloured by sentiment (a PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    centred = z_means - z_means.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    explained = (s[:2] ** 2) / max(float((s**2).sum()), 1e-12)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for value, colour, name in ((0, "tab:red", "negative"), (1, "tab:blue", "positive")):
        sel = labels == value
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, alpha=0.4, c=colour, label=name, linewidths=0)
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)" if len(explained) > 1 else "PC 2")
    ax.set_title(f"Test reviews in latent space (PCA of z_mean, n={len(labels):,})")
    ax.legend(markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
