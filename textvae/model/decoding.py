"""Decoding latent codes into token ids: free-running, one step at a time, from the start id.

:func:`generate` runs the autoregressive decoder of a :class:`~textvae.model.vae.TextVAE` the way it
was trained, except that each step reads the id it chose at the previous step instead of the
review's own: greedy (arg-max) by default, or sampled with a ``temperature`` and an optional
``top_k``. Padding and the start id are never chosen (the model never learned to predict them).
The seed's ``"repeat"`` decoder has no notion of a previous id: it predicts every position at
once from ``z`` and its arg-max is taken.

Usable from a notebook::

    model = textvae.load_model("runs/imdb/best.keras")
    z = np.random.default_rng(0).standard_normal((5, model.latent)).astype("float32")
    ids = textvae.generate(model, z, temperature=0.8, top_k=40)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from textvae._checks import non_negative, positive_int
from textvae.data.vocab import PAD_ID, START_ID

__all__ = ["generate"]

#: The first id generation may choose: padding and the start id come before it.
_FIRST_CHOICE = max(PAD_ID, START_ID) + 1


def generate(
    model: Any,
    z: np.ndarray,
    *,
    steps: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = 0,
    batch_size: int = 1000,
) -> np.ndarray:
    """Token ids decoded from latent codes ``z``, start id first.

    Parameters
    ----------
    model
        A trained :class:`~textvae.model.vae.TextVAE`.
    z
        Latent codes, shape ``(n, model.latent)``.
    steps
        Ids to generate after the start id; default ``model.max_len - 1`` (a full row).
        Decoding stops there: the store format has no end-of-review id.
    temperature
        0 (the default) takes the most probable id at each step (greedy); above 0 samples from
        the softmax sharpened (< 1) or flattened (> 1) by it.
    top_k
        When sampling, draw only among the ``top_k`` most probable ids (``None``: all).
    seed
        Seed of the sampling (greedy decoding uses no randomness).
    batch_size
        Codes decoded together (memory: ``batch_size x vocab_size`` probabilities per step).

    Returns
    -------
    ``(n, steps + 1)`` int32 ids: the start id, then the generated ones.
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != model.latent:
        raise ValueError(
            f"`z` must have shape (n, {model.latent}) for this model. Received: shape={z.shape}"
        )
    steps = model.max_len - 1 if steps is None else positive_int("steps", steps)
    temperature = non_negative("temperature", temperature)
    if top_k is not None:
        top_k = min(positive_int("top_k", top_k), model.vocab_size)
    batch_size = positive_int("batch_size", batch_size)
    rng = np.random.default_rng(seed)
    parts = [
        _generate_batch(model, z[i : i + batch_size], steps, temperature, top_k, rng)
        for i in range(0, len(z), batch_size)
    ]
    if not parts:
        return np.zeros((0, steps + 1), dtype=np.int32)
    return np.concatenate(parts)


def _choose(
    probs: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> np.ndarray:
    """One id per row of ``probs`` (n, vocab): arg-max, or a draw at ``temperature``."""
    if temperature == 0:  # padding and the start id are ids 0 and 1: look past them
        return (probs[:, _FIRST_CHOICE:].argmax(axis=1) + _FIRST_CHOICE).astype(np.int32)
    probs = probs.astype(np.float64, copy=True)
    probs[:, [PAD_ID, START_ID]] = 0.0
    # Shifted so that each row's most probable id is at 0 *before* dividing: every other id is
    # then in [-69, 0), and dividing by any positive temperature gives a finite number or -inf,
    # never -inf - -inf = nan. A temperature so small that it overflows (5e-324) is greedy
    # sampling among the most probable ids, and a huge one (1e308) is uniform, as the limits are.
    logits = np.log(np.clip(probs, 1e-30, None))
    logits -= logits.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        logits /= temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        logits = np.where(logits >= kth, logits, -np.inf)
    weights = np.exp(logits)
    weights[:, [PAD_ID, START_ID]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    draws = rng.random((len(weights), 1))
    chosen = (weights.cumsum(axis=1) < draws).sum(axis=1)
    return np.minimum(chosen, weights.shape[1] - 1).astype(np.int32)


def _generate_batch(model, z, steps, temperature, top_k, rng) -> np.ndarray:
    n = len(z)
    out = np.zeros((n, steps + 1), dtype=np.int32)
    out[:, 0] = START_ID
    if model.decoder_type == "repeat":
        probs = keras.ops.convert_to_numpy(model.decoder(z, training=False))
        for s in range(1, steps + 1):
            position = min(s, model.max_len - 1)
            out[:, s] = _choose(probs[:, position], temperature, top_k, rng)
        return out
    z_t = ops.convert_to_tensor(z)
    state = model.decoder_init(z_t)
    token = ops.convert_to_tensor(out[:, 0])
    for s in range(1, steps + 1):
        embedded = model.decoder_embedding(token)
        h, state = model.decoder_gru.cell(ops.concatenate([embedded, z_t], axis=-1), state)
        features = model.decoder_projection(ops.concatenate([h, embedded, z_t], axis=-1))
        probs = keras.ops.convert_to_numpy(model.reconstruction_head(features))
        out[:, s] = _choose(probs, temperature, top_k, rng)
        token = ops.convert_to_tensor(out[:, s])
    return out
