"""The evaluation metrics of a text VAE, each written once, in NumPy.

:func:`token_accuracy` and :func:`active_units` work on arrays a user has at hand;
:class:`EvalTotals` sums the same quantities over the batches of a split for
:func:`textvae.evaluate.evaluate_vae`. The KL divergence is not here: it is computed on tensors
by :func:`textvae.model.kl_divergence`, the loss's own formula, also at evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textvae.vocab import PAD_ID

__all__ = ["EvalTotals", "active_units", "token_accuracy"]

#: A latent dimension is active when the variance of its z_mean over reviews exceeds this.
ACTIVE_THRESHOLD = 0.01


def active_units(z_means: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of latent dimensions whose ``z_mean`` varies across reviews (Burda et al., 2016).

    Parameters
    ----------
    z_means
        ``(reviews, latent)``: the encoder's ``z_mean`` for each review.
    threshold
        A dimension is active when the variance of its ``z_mean`` over reviews exceeds this.

    Returns
    -------
    int
        How many of the ``latent`` dimensions are active.
    """
    z_means = np.asarray(z_means)
    if z_means.ndim != 2 or z_means.shape[0] < 1:
        raise ValueError(
            "`z_means` must be a 2-D array (reviews, latent) with at least one review. "
            f"Received: shape={z_means.shape}"
        )
    variances = np.var(z_means.astype(np.float64), axis=0)
    return int(np.count_nonzero(variances > threshold))


def _token_hits(pred_ids: np.ndarray, ids: np.ndarray, pad_id: int | None) -> tuple[int, int]:
    """``(correct, counted)`` positions: ``counted`` leaves out ``ids == pad_id``."""
    keep = np.ones(ids.shape, dtype=bool) if pad_id is None else ids != pad_id
    return int(np.count_nonzero((pred_ids == ids) & keep)), int(np.count_nonzero(keep))


def token_accuracy(
    probs_or_pred_ids: np.ndarray, ids: np.ndarray, pad_id: int | None = PAD_ID
) -> float:
    """Fraction of non-padding positions whose predicted id equals the true id.

    Parameters
    ----------
    probs_or_pred_ids
        Either probabilities ``(batch, max_len, vocab)`` (the arg-max is taken) or predicted ids
        of the same shape as ``ids``.
    ids
        True ids ``(batch, max_len)``.
    pad_id
        Positions where ``ids == pad_id`` are left out; ``None`` counts every position.

    Returns
    -------
    float
        In [0, 1].
    """
    pred = np.asarray(probs_or_pred_ids)
    ids = np.asarray(ids)
    if pred.ndim == ids.ndim + 1:
        pred = pred.argmax(axis=-1)
    if pred.shape != ids.shape:
        raise ValueError(
            "`probs_or_pred_ids` must have the shape of `ids`, or that shape plus a vocabulary "
            f"axis. Received: probs_or_pred_ids.shape={np.shape(probs_or_pred_ids)}, "
            f"ids.shape={ids.shape}"
        )
    correct, total = _token_hits(pred, ids, pad_id)
    if total == 0:
        raise ValueError(f"`ids` has no position other than padding (pad_id={pad_id}).")
    return correct / total


class EvalTotals:
    """Running sums of the test metrics over batches; :meth:`result` turns them into metrics.

    Parameters
    ----------
    pad_id
        Padding positions are left out of the token metrics.
    """

    def __init__(self, pad_id: int = PAD_ID) -> None:
        self.pad_id = pad_id
        self.ce_sum = 0.0
        self.correct_tokens = 0
        self.tokens = 0
        self.kl_sum = 0.0
        self.correct_sentiment = 0
        self._z_means: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(
        self,
        ids: np.ndarray,
        p_true: np.ndarray,
        pred_ids: np.ndarray,
        kl: np.ndarray,
        sentiment: np.ndarray,
        labels: np.ndarray,
        z_mean: np.ndarray,
    ) -> None:
        """Add one batch.

        Parameters
        ----------
        ids
            True ids ``(batch, max_len)``.
        p_true
            The decoder's probability of each true id ``(batch, max_len)``.
        pred_ids
            The decoder's arg-max ids ``(batch, max_len)``.
        kl
            KL(q(z|x) || N(0, I)) per review ``(batch,)``, in nats.
        sentiment, labels
            Predicted probability of a positive review and the 0/1 labels, ``(batch,)`` each.
        z_mean
            The encoder's means ``(batch, latent)``.
        """
        keep = ids != self.pad_id
        self.ce_sum += float(-np.log(np.clip(p_true[keep], 1e-12, None)).sum())
        correct, counted = _token_hits(pred_ids, ids, self.pad_id)
        self.correct_tokens += correct
        self.tokens += counted
        self.kl_sum += float(np.sum(kl, dtype=np.float64))
        labels = np.ravel(labels)
        self.correct_sentiment += int(
            np.count_nonzero((np.ravel(sentiment) > 0.5) == (labels > 0.5))
        )
        self._z_means.append(np.asarray(z_mean))
        self._labels.append(labels)

    @property
    def z_means(self) -> np.ndarray:
        """Every review's ``z_mean`` so far ``(reviews, latent)``."""
        return np.concatenate(self._z_means)

    @property
    def labels(self) -> np.ndarray:
        """Every review's label so far ``(reviews,)``."""
        return np.concatenate(self._labels)

    def result(self) -> dict[str, Any]:
        """The metrics over every batch added (see :func:`textvae.evaluate.evaluate_vae`)."""
        z = self.z_means
        n = len(z)
        return {
            "reviews": n,
            "reconstruction_ce_per_token": self.ce_sum / max(self.tokens, 1),
            "token_accuracy": self.correct_tokens / max(self.tokens, 1),
            "kl": self.kl_sum / n,
            "active_units": active_units(z),
            "latent": int(z.shape[1]),
            "sentiment_accuracy": self.correct_sentiment / n,
        }
