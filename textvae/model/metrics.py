"""The evaluation metrics of a text VAE, each written once, in NumPy.

:func:`token_accuracy` and :func:`active_units` work on arrays a user has at hand;
:class:`EvalTotals` sums the same quantities over the batches of a split for
:func:`textvae.training.evaluate.evaluate_vae`. The KL divergence is not here: it is computed
on tensors by :func:`textvae.model.vae.kl_divergence`, the loss's own formula, also at
evaluation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from textvae.data.vocab import PAD_ID

__all__ = [
    "EvalTotals",
    "active_units",
    "bleu",
    "predicted_positions",
    "text_ids",
    "token_accuracy",
    "unigram_f1",
]

#: A latent dimension is active when the variance of its z_mean over reviews exceeds this.
ACTIVE_THRESHOLD = 0.01


def _nats(p: np.ndarray) -> float:
    return float(-np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, None)).sum())


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


def predicted_positions(ids: np.ndarray, pad_id: int | None = PAD_ID) -> np.ndarray:
    """Where a decoder predicts an id: every text position but the first of each row.

    Padding is not text, and the first id of a row's text (the start id, or the first kept
    word of a review cut at ``max_len``) is given to the decoder, not predicted: the same
    positions the training loss counts (:class:`textvae.model.vae.ReconstructionLoss`).

    Parameters
    ----------
    ids
        ``(..., max_len)`` token ids.
    pad_id
        The padding id; ``None`` treats every position as text (still leaving out the first).

    Returns
    -------
    A boolean array of ``ids``' shape.
    """
    ids = np.asarray(ids)
    text = np.ones(ids.shape, dtype=bool) if pad_id is None else ids != pad_id
    return text & (np.cumsum(text, axis=-1) > 1)


def text_ids(row: np.ndarray, pad_id: int = PAD_ID) -> np.ndarray:
    """The ids a decoder predicts in one store row (see :func:`predicted_positions`), in order."""
    row = np.asarray(row)
    return row[predicted_positions(row, pad_id)]


def _token_hits(pred_ids: np.ndarray, ids: np.ndarray, pad_id: int | None) -> tuple[int, int]:
    """``(correct, counted)`` over :func:`predicted_positions`."""
    keep = predicted_positions(ids, pad_id)
    return int(np.count_nonzero((pred_ids == ids) & keep)), int(np.count_nonzero(keep))


def token_accuracy(
    probs_or_pred_ids: np.ndarray, ids: np.ndarray, pad_id: int | None = PAD_ID
) -> float:
    """Fraction of predicted positions (:func:`predicted_positions`: text, not its first id)
    whose predicted id equals the true id.

    Parameters
    ----------
    probs_or_pred_ids
        Either probabilities ``(batch, max_len, vocab)`` (the arg-max is taken) or predicted ids
        of the same shape as ``ids``.
    ids
        True ids ``(batch, max_len)``.
    pad_id
        Positions where ``ids == pad_id`` are left out; ``None`` counts every position but
        the first.

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
        raise ValueError(
            f"`ids` has no predicted position: only padding (pad_id={pad_id}) and first ids."
        )
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
        self.ce_z0_sum = 0.0
        self.correct_tokens = 0
        self.tokens = 0
        self.kl_sum = 0.0
        self.correct_sentiment = 0
        self.sentiment_reviews = 0
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
        p_true_z0: np.ndarray | None = None,
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
            Predicted probability of a positive review and the 0/1 labels, ``(batch,)`` each;
            a review labelled -1 (unlabelled) counts in no sentiment metric.
        z_mean
            The encoder's means ``(batch, latent)``.
        p_true_z0
            The decoder's probability of each true id with z = 0 (optional).
        """
        keep = predicted_positions(ids, self.pad_id)
        self.ce_sum += _nats(p_true[keep])
        if p_true_z0 is not None:
            self.ce_z0_sum += _nats(np.asarray(p_true_z0)[keep])
        correct, counted = _token_hits(pred_ids, ids, self.pad_id)
        self.correct_tokens += correct
        self.tokens += counted
        self.kl_sum += float(np.sum(kl, dtype=np.float64))
        labels = np.ravel(labels)
        labelled = labels >= 0  # -1: an unlabelled review, counted in no sentiment metric
        hits = (np.ravel(sentiment) > 0.5) == (labels > 0.5)
        self.correct_sentiment += int(np.count_nonzero(hits[labelled]))
        self.sentiment_reviews += int(np.count_nonzero(labelled))
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
        """The metrics over every batch added (:func:`textvae.training.evaluate.evaluate_vae`)."""
        z = self.z_means
        n = len(z)
        tokens = max(self.tokens, 1)
        ce = self.ce_sum / tokens
        metrics = {
            "reviews": n,
            "tokens": self.tokens,
            "reconstruction_ce_per_token": ce,
            "perplexity": math.exp(min(ce, 700.0)),
        }
        if self.ce_z0_sum:
            metrics["ce_per_token_z0"] = self.ce_z0_sum / tokens
            metrics["z_information"] = metrics["ce_per_token_z0"] - ce
        return metrics | {
            "token_accuracy": self.correct_tokens / tokens,
            "kl": self.kl_sum / n,
            "active_units": active_units(z),
            "latent": int(z.shape[1]),
            "sentiment_accuracy": (
                self.correct_sentiment / self.sentiment_reviews if self.sentiment_reviews else None
            ),
            "sentiment_reviews": self.sentiment_reviews,
        }


def unigram_f1(hypotheses: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
    """Mean unigram F1 of each hypothesis against its reference (bags of ids, clipped counts).

    Parameters
    ----------
    hypotheses, references
        One id sequence per review, paired by position (padding already removed).

    Returns
    -------
    float
        The mean over reviews of ``2 P R / (P + R)``, ``P`` and ``R`` the shares of the
        hypothesis' and of the reference's ids matched in the other (0 where nothing matches).
    """
    _check_pairs(hypotheses, references)
    total = 0.0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp, ref = np.asarray(hyp).tolist(), np.asarray(ref).tolist()
        overlap = sum((Counter(hyp) & Counter(ref)).values())
        if overlap:
            precision, recall = overlap / len(hyp), overlap / len(ref)
            total += 2 * precision * recall / (precision + recall)
    return total / len(references)


def bleu(
    hypotheses: Sequence[Sequence[int]], references: Sequence[Sequence[int]], max_n: int = 4
) -> float:
    """Corpus BLEU (Papineni et al. 2002) with one reference per hypothesis.

    The geometric mean of the clipped n-gram precisions for n = 1..``max_n`` over the whole
    corpus, times the brevity penalty ``exp(1 - ref_len / hyp_len)`` when the hypotheses are
    shorter in total. No smoothing: 0 when some order has no match at all.

    Parameters
    ----------
    hypotheses, references
        One id sequence per review, paired by position.
    max_n
        The longest n-gram (4: BLEU-4).

    Returns
    -------
    float
        In [0, 1].
    """
    _check_pairs(hypotheses, references)
    matches, counts = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp, ref = tuple(np.asarray(hyp).tolist()), tuple(np.asarray(ref).tolist())
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, max_n + 1):
            hyp_grams = Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
            ref_grams = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
            matches[n - 1] += sum((hyp_grams & ref_grams).values())
            counts[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / c) for m, c in zip(matches, counts, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def _check_pairs(hypotheses: Sequence[Any], references: Sequence[Any]) -> None:
    if len(hypotheses) != len(references) or not len(references):
        raise ValueError(
            "`hypotheses` and `references` must pair up, at least one of each. Received: "
            f"{len(hypotheses)} hypotheses, {len(references)} references"
        )
