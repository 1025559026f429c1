"""Decoding latent codes into token ids: free-running, one step at a time, from the start id.

:func:`generate` runs the autoregressive decoder of a :class:`~textvae.model.vae.TextVAE` the way it
was trained, except that each step reads the id it chose at the previous step instead of the
review's own: greedy (arg-max) with ``temperature=0`` (the default), or sampled at a
``temperature`` from the nucleus (``top_p``, Holtzman et al. 2020) and/or the ``top_k`` most
probable ids. A row ends where the pad id is chosen: the decoder learned it as "the review ends
here" (:mod:`textvae.model.losses`), and the row is padded after it. The start id is never
chosen, nor ``<oov>`` unless ``allow_oov=True``. The seed's ``"repeat"`` decoder has no notion
of a previous id: it predicts every position at once from ``z`` and its ids are chosen the same
way, position by position.

The decodings the commands use by default, chosen by measurement (docs, "The model"), are
:data:`~textvae.model.config.SAMPLED` for draws from the prior and interpolations and
:data:`~textvae.model.config.RECONSTRUCTION` to decode
a review's own latent mean (both kept in :mod:`textvae.model.config`, which imports no Keras).

Usable from a notebook::

    model = textvae.load_model("runs/imdb/best.keras")
    z = np.random.default_rng(0).standard_normal((5, model.latent)).astype("float32")
    ids = textvae.generate(model, z, temperature=1.0, top_p=0.9)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from textvae._checks import non_negative, positive_int, probability
from textvae.data.vocab import OOV_ID, PAD_ID, START_ID

__all__ = ["generate"]


def generate(
    model: Any,
    z: np.ndarray,
    *,
    steps: int | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    allow_oov: bool = False,
    seed: int | None = 0,
    batch_size: int = 1000,
) -> np.ndarray:
    """Token ids decoded from latent codes ``z``, start id first, padded after each row's end.

    Parameters
    ----------
    model
        A trained :class:`~textvae.model.vae.TextVAE`.
    z
        Latent codes, shape ``(n, model.latent)``.
    steps
        Most ids to generate after the start id; default a full window and its end:
        ``model.target_window`` (``max_len`` unless the model decodes a window). A training row
        holds the start id and ``target_window - 1`` ids, and the step after them predicts its
        end, so a text the length of a full row ends at step ``target_window``. (The
        ``"repeat"`` decoder predicts the row's positions only: ``target_window - 1``.)
        A row ends earlier where the pad id (the end) is chosen.
    temperature
        0 (the default) takes the most probable id at each step (greedy); above 0 samples from
        the softmax sharpened (< 1) or flattened (> 1) by it.
    top_p
        When sampling, draw only from the nucleus: the fewest most probable ids whose
        probability (after ``temperature``) reaches ``top_p``, in (0, 1]; 1 (the default) keeps
        all.
    top_k
        When sampling, draw only among the ``top_k`` most probable ids (``None``: all).
    allow_oov
        Let ``<oov>`` be chosen (default False: it stands for any rare word, not for one).
    seed
        Seed of the sampling (greedy decoding uses no randomness).
    batch_size
        Codes decoded together (memory: ``batch_size x vocab_size`` probabilities per step).

    Returns
    -------
    ``(n, steps + 1)`` int32 ids: the start id, then the generated ones; after a row's end
    (the pad id) only the pad id.
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != model.latent:
        raise ValueError(
            f"`z` must have shape (n, {model.latent}) for this model. Received: shape={z.shape}"
        )
    if steps is None:
        steps = model.target_window - (model.decoder_type == "repeat")
    steps = positive_int("steps", steps)
    choice = {
        "temperature": non_negative("temperature", temperature),
        "top_p": probability("top_p", top_p),
        "top_k": None if top_k is None else min(positive_int("top_k", top_k), model.vocab_size),
        "banned": [START_ID] if allow_oov else [START_ID, OOV_ID],
        "rng": np.random.default_rng(seed),
    }
    batch_size = positive_int("batch_size", batch_size)
    parts = [
        _generate_batch(model, z[i : i + batch_size], steps, choice)
        for i in range(0, len(z), batch_size)
    ]
    if not parts:
        return np.zeros((0, steps + 1), dtype=np.int32)
    return np.concatenate(parts)


def _choose(
    probs: np.ndarray,
    temperature: float,
    top_p: float,
    top_k: int | None,
    banned: list[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """One id per row of ``probs`` (n, vocab): arg-max, or a draw at ``temperature`` from the
    nucleus / top-k; ``banned`` ids are never chosen."""
    if temperature == 0:
        probs = probs.astype(np.float64, copy=True)
        probs[:, banned] = -1.0
        return probs.argmax(axis=1).astype(np.int32)
    # float32 throughout and a power instead of log / exp: half the time of the float64 version
    # at (500, 20000) (257 vs 521 ms a step with top_p), which is most of a sampled step.
    weights = np.array(probs, dtype=np.float32)
    weights[:, banned] = 0.0
    # Scaled so each row's most probable id is 1 *before* the power: every weight stays in
    # [0, 1] whatever the temperature. A temperature so small that 1 / temperature overflows
    # (5e-324) gives the exponent inf: 1 for the most probable ids, 0 for the rest (greedy
    # sampling among them); one so large that the exponent rounds to 0 (1e308) gives 1 for
    # every id (uniform), as the limits are.
    weights /= np.maximum(weights.max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    with np.errstate(over="ignore", under="ignore"):
        exponent = np.float32(1.0 / temperature)
        if exponent != 1:
            np.power(weights, exponent, out=weights)
    weights[:, banned] = 0.0
    if top_k is not None and top_k < weights.shape[1]:
        kth = np.partition(weights, -top_k, axis=1)[:, -top_k][:, None]
        weights[weights < kth] = 0.0
    if top_p < 1:
        # The nucleus: ids at least as probable as the one whose cumulative mass (most probable
        # first) reaches top_p of the total; ties at the edge are all kept.
        ordered = np.sort(weights, axis=1)[:, ::-1]
        mass = np.cumsum(ordered, axis=1)
        edge = (mass < top_p * mass[:, -1:]).sum(axis=1)
        edge = np.minimum(edge, weights.shape[1] - 1)
        weights[weights < ordered[np.arange(len(ordered)), edge][:, None]] = 0.0
    mass = np.cumsum(weights, axis=1)
    draws = rng.random((len(weights), 1)) * mass[:, -1:]
    chosen = (mass <= draws).sum(axis=1)  # the first id whose cumulative mass passes the draw
    # Float rounding can leave the draw at the total: take the last allowed id.
    last = weights.shape[1] - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    return np.minimum(chosen, last).astype(np.int32)


def _generate_batch(model, z, steps, choice) -> np.ndarray:
    n = len(z)
    out = np.zeros((n, steps + 1), dtype=np.int32)
    out[:, 0] = START_ID
    ended = np.zeros(n, dtype=bool)
    if model.decoder_type == "repeat":
        probs = keras.ops.convert_to_numpy(model.decoder(z, training=False))
        for s in range(1, steps + 1):
            position = min(s, model.target_window - 1)
            chosen = _choose(probs[:, position], **choice)
            ended = _record(out, s, chosen, ended)
            if ended.all():
                break
        return out
    z_t = ops.convert_to_tensor(z)
    # A list either way: [h] for a GRU, [h, c] for an LSTM; the cell returns it in that form.
    state = model.decoder_initial_state(z_t)
    cell = model.decoder_rnn.cell
    token = ops.convert_to_tensor(out[:, 0])
    for s in range(1, steps + 1):
        embedded = model.decoder_embedding(token)
        z_s = z_t
        if model.decoder_position:  # the step reading column s - 1
            position = ops.full((n, 1), (s - 1) / model.target_window, dtype=z_t.dtype)
            z_s = ops.concatenate([z_t, position], axis=-1)
        h, state = cell(ops.concatenate([embedded, z_s], axis=-1), state)
        features = model.decoder_projection(ops.concatenate([h, embedded, z_s], axis=-1))
        probs = keras.ops.convert_to_numpy(model.reconstruction_head(features))
        ended = _record(out, s, _choose(probs, **choice), ended)
        if ended.all():
            break
        token = ops.convert_to_tensor(out[:, s])
    return out


def _record(out: np.ndarray, s: int, chosen: np.ndarray, ended: np.ndarray) -> np.ndarray:
    """Write step ``s``'s ids (the pad id in rows that ended before) and return which rows have
    ended now."""
    chosen[ended] = PAD_ID
    out[:, s] = chosen
    return ended | (chosen == PAD_ID)
