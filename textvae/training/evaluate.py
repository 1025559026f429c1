"""Evaluation of a trained text VAE on a split of a token store (the picture: :mod:`.plots`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from textvae._checks import int_at_least, positive_int
from textvae.batching.sequence import OneHotSequence
from textvae.config import LOG_SECONDS
from textvae.data.vocab import pad_row
from textvae.model import generate, kl_divergence
from textvae.model.config import RECONSTRUCTION, SAMPLED
from textvae.model.generation_metrics import generated_texts, generation_scores
from textvae.model.metrics import EvalTotals, bleu, text_ids, unigram_f1
from textvae.training.console import progress_bar

__all__ = [
    "PRIOR_SAMPLES",
    "RECONSTRUCT_ROWS",
    "evaluate_vae",
    "prior_scores",
    "reconstruction_scores",
    "split_sentiment_accuracy",
]

#: Reviews decoded free-running for the reconstruction scores (a fixed, seeded subset).
RECONSTRUCT_ROWS = 1000

#: Draws from the prior decoded for the ``prior_*`` generation scores.
PRIOR_SAMPLES = 500


def _eval_model(model: Any) -> keras.Model:
    """ids -> (z_mean, KL per review, p(true id) given z_mean, arg-max id, p(true id) given
    z = 0, sentiment), compiled by ``predict``: the (batch, max_len, vocab) probabilities never
    leave the graph, and the KL is the loss's own formula."""
    ids = keras.Input((model.max_len,), dtype="int32")
    z_mean, z_log_var, _ = model.encoder(ids)
    kl = ops.sum(kl_divergence(z_mean, z_log_var), axis=-1)
    true_ids = ops.expand_dims(model.window(ids), -1)  # the ids the decoder reconstructs
    probs = model.decoder(model.decoder_inputs(z_mean, ids))
    p_true = ops.squeeze(ops.take_along_axis(probs, true_ids, axis=-1), -1)
    predicted = ops.argmax(probs, axis=-1)
    probs_z0 = model.decoder(model.decoder_inputs(ops.zeros_like(z_mean), ids))
    p_true_z0 = ops.squeeze(ops.take_along_axis(probs_z0, true_ids, axis=-1), -1)
    outputs = [z_mean, kl, p_true, predicted, p_true_z0, model.sentiment_head(z_mean)]
    return keras.Model(ids, outputs)


def evaluate_vae(
    model: Any,
    sequence: OneHotSequence,
    *,
    reconstruct_rows: int = RECONSTRUCT_ROWS,
    prior_samples: int = PRIOR_SAMPLES,
    verbose: int = 1,
    log_seconds: float = LOG_SECONDS,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Test metrics of ``model`` over every batch of ``sequence`` (sparse targets suffice).

    Token metrics count text positions only (not padding, not the start id); the decoder
    reads the review itself (teacher forcing) and the latent mean (no sampling noise). Returns
    ``(metrics, z_means, labels)`` where ``metrics`` holds

    - ``reconstruction_ce_per_token``: mean cross-entropy (nats) per text token, and
      ``perplexity`` = exp of it;
    - ``ce_per_token_z0``: the same with z = 0, and ``z_information`` = the difference (nats
      per token the latent code saves the decoder);
    - ``token_accuracy``: arg-max accuracy over text positions (teacher-forced);
    - ``kl``: mean KL(q(z|x) || N(0, I)) in nats per review;
    - ``active_units`` / ``latent``: latent dimensions whose z_mean varies across reviews;
    - ``sentiment_accuracy``: accuracy of the sentiment head on the latent mean, over the
      labelled reviews (label -1, unlabelled, is left out; ``None`` when none is labelled), and
      ``sentiment_reviews``: how many were labelled;
    - ``reviews``, ``tokens``: how many were evaluated;
    - the free-running scores of :func:`reconstruction_scores` on ``reconstruct_rows`` fixed
      reviews of the same split (``reconstruct_*``; none when ``reconstruct_rows=0``);
    - the generation scores of :func:`prior_scores` over ``prior_samples`` draws from the prior
      (``prior_*``; none when ``prior_samples=0``).

    ``verbose`` 1 shows Keras' progress bar on a terminal, and elsewhere a plain line every
    ``log_seconds`` and at the end; 2 the end line only; 0 nothing
    (:func:`textvae.training.console.progress_bar`). ``log`` receives the plain lines.
    """
    int_at_least("reconstruct_rows", reconstruct_rows, 0)
    int_at_least("prior_samples", prior_samples, 0)
    evaluator = _eval_model(model)
    totals = EvalTotals()
    shown = {"verbose": verbose, "log_seconds": log_seconds, "log": log}
    bar = progress_bar(len(sequence), label="evaluating", unit_name="batch", **shown)
    for i in range(len(sequence)):
        ids, outputs = sequence[i]
        z_mean, kl, p_true, predicted, p_true_z0, sentiment = evaluator.predict_on_batch(ids)
        label = outputs[sequence.sentiment_name]
        window = ids[:, ids.shape[1] - model.target_window :]
        totals.update(window, p_true, predicted, kl, sentiment, label, z_mean, p_true_z0=p_true_z0)
        if bar is not None:
            bar.update(i + 1)
    metrics = totals.result()
    if reconstruct_rows:
        metrics.update(reconstruction_scores(model, sequence, reconstruct_rows, **shown))
    if prior_samples:
        metrics.update(prior_scores(model, prior_samples))
    return metrics, totals.z_means, totals.labels


def prior_scores(model: Any, samples: int = PRIOR_SAMPLES, *, seed: int = 0) -> dict[str, Any]:
    """Generation scores of ``samples`` draws z ~ N(0, I) decoded as ``textvae-sample prior``
    decodes them (:data:`textvae.model.config.SAMPLED`, up to ``max_len`` ids):
    ``prior_samples`` and :func:`textvae.model.generation_metrics.generation_scores` under the
    ``prior`` prefix (``prior_ended``, ``prior_mean_length``, ``prior_rep4``,
    ``prior_distinct2``, ``prior_oov_share``). ``seed`` seeds the draws and the sampling."""
    samples = positive_int("samples", samples)
    z = np.random.default_rng(seed).standard_normal((samples, model.latent)).astype(np.float32)
    rows = generate(model, z, seed=seed, batch_size=samples, **SAMPLED)
    return {"prior_samples": samples, **generation_scores(rows, "prior")}


def split_sentiment_accuracy(
    model: Any,
    store: Any,
    split: str,
    *,
    batch_size: int = 256,
    verbose: int = 1,
    log_seconds: float = LOG_SECONDS,
    log: Callable[[str], None] = print,
) -> dict[str, float | int | None]:
    """Sentiment accuracy from the latent mean over every labelled review of ``split``.

    The encoder alone runs (no decoder, no softmax), so this costs a small share of
    :func:`evaluate_vae` and can cover a whole test split when the token metrics use a subset.
    Returns ``split_sentiment_accuracy`` (``None`` for a split with no labelled review) and
    ``split_sentiment_reviews`` (unlabelled rows, label -1, are left out). ``verbose``,
    ``log_seconds`` and ``log`` as for :func:`evaluate_vae`.
    """
    num_rows = store.num_rows(split)
    batch_size = positive_int("batch_size", batch_size)
    correct = counted = 0
    bar = progress_bar(
        num_rows,
        label=f"sentiment on {split}",
        unit_name="review",
        verbose=verbose,
        log_seconds=log_seconds,
        log=log,
    )
    for start in range(0, num_rows, batch_size):
        rows = slice(start, min(start + batch_size, num_rows))
        labels = np.asarray(store.labels(split, rows)).ravel()
        ids = store.read(split, rows).astype(np.int32)
        probs = np.ravel(
            keras.ops.convert_to_numpy(model.sentiment_predictor.predict_on_batch(ids))
        )
        labelled = labels >= 0
        correct += int(np.count_nonzero((probs[labelled] > 0.5) == (labels[labelled] > 0)))
        counted += int(np.count_nonzero(labelled))
        if bar is not None:
            bar.update(rows.stop)
    return {
        "split_sentiment_accuracy": correct / counted if counted else None,
        "split_sentiment_reviews": counted,
    }


def _fixed_rows(num_rows: int, count: int) -> np.ndarray:
    """``count`` rows of ``num_rows``, the same in every run (seeded, sorted)."""
    if count >= num_rows:
        return np.arange(num_rows)
    return np.sort(np.random.default_rng(1000).choice(num_rows, size=count, replace=False))


def reconstruction_scores(
    model: Any,
    sequence: OneHotSequence,
    rows: int = RECONSTRUCT_ROWS,
    *,
    verbose: int = 1,
    log_seconds: float = LOG_SECONDS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Free-running reconstruction of a fixed subset of ``sequence``'s split, scored.

    Each review is encoded to its latent mean and decoded as ``textvae-sample reconstruct``
    decodes it (:data:`textvae.model.config.RECONSTRUCTION`), up to its end or ``max_len``
    ids, then compared with its own text (the words the decoder predicts):

    - ``reconstruct_unigram_f1``: mean unigram F1 (:func:`textvae.model.metrics.unigram_f1`);
    - ``reconstruct_bleu4``: corpus BLEU-4 (:func:`textvae.model.metrics.bleu`);
    - ``reconstruct_sentiment_kept``: share of reconstructions that the model's own sentiment
      head, reading them back, classifies as it classifies the input;
    - ``reconstruct_reviews``: how many were decoded (``rows``, or fewer in a small split);
    - the generation scores of the reconstructions
      (:func:`textvae.model.generation_metrics.generation_scores`: ``reconstruct_ended``,
      ``reconstruct_mean_length``, ``reconstruct_rep4``, ``reconstruct_distinct2``,
      ``reconstruct_oov_share``).

    ``verbose``, ``log_seconds`` and ``log`` as for :func:`evaluate_vae`.
    """
    store = sequence.store
    subset = _fixed_rows(store.num_rows(sequence.split), positive_int("rows", rows))
    batch = 250
    hypotheses: list[np.ndarray] = []
    references: list[np.ndarray] = []
    kept = 0
    decoded: list[np.ndarray] = []
    bar = progress_bar(
        len(subset),
        label="reconstructing",
        unit_name="review",
        verbose=verbose,
        log_seconds=log_seconds,
        log=log,
    )
    for start in range(0, len(subset), batch):
        ids = store.read(sequence.split, subset[start : start + batch]).astype(np.int32)
        z_mean = keras.ops.convert_to_numpy(model.encoder(ids, training=False)[0])
        texts = [text_ids(row[len(row) - model.target_window :]) for row in ids]
        generated = generate(model, z_mean, batch_size=batch, **RECONSTRUCTION)
        decoded.append(generated)
        again = np.zeros_like(ids)
        for b, (text, hypothesis) in enumerate(zip(texts, generated_texts(generated), strict=True)):
            hypotheses.append(hypothesis)
            references.append(text)
            again_text = [int(generated[b, 0]), *hypothesis.tolist()]
            pad_row(again_text, model.max_len, store.padding, store.truncating, again[b])
        before = keras.ops.convert_to_numpy(model.sentiment_predictor(ids, training=False))
        after = keras.ops.convert_to_numpy(model.sentiment_predictor(again, training=False))
        kept += int(np.count_nonzero((before.ravel() > 0.5) == (after.ravel() > 0.5)))
        if bar is not None:
            bar.update(min(start + batch, len(subset)))
    return {
        "reconstruct_reviews": len(subset),
        "reconstruct_unigram_f1": unigram_f1(hypotheses, references),
        "reconstruct_bleu4": bleu(hypotheses, references),
        "reconstruct_sentiment_kept": kept / max(len(subset), 1),
        **generation_scores(np.concatenate(decoded), "reconstruct"),
    }
