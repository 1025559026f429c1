"""Use a trained run: reconstruct reviews, decode draws from the prior, interpolate."""

from __future__ import annotations

import os

import keras
import numpy as np

from textvae.errors import CheckpointError
from textvae.run import BEST, VOCAB, RunDir
from textvae.vocab import PAD_ID, START_ID, Vocabulary, pad_row, tokenize

__all__ = ["decode_latents", "encode_texts", "interpolate", "load_run", "prior", "reconstruct"]


def load_run(
    out: str | os.PathLike[str] | RunDir, checkpoint: str = BEST
) -> tuple[keras.Model, Vocabulary, str, str]:
    """``(model, vocabulary, padding, truncating)`` of the training run in ``out``.

    Parameters
    ----------
    out
        The run folder (``textvae-train --out``).
    checkpoint
        Which model of the run: ``best.keras`` or ``last.keras``.

    Raises
    ------
    CheckpointError
        ``out`` lacks the checkpoint, ``vocab.json`` or ``config.json``, or one is damaged.
    """
    run = out if isinstance(out, RunDir) else RunDir(out)
    tokens = run.read_vocab()
    try:
        vocab = Vocabulary(tokens)
    except ValueError as err:  # a list of strings, but not a textvae vocabulary
        raise CheckpointError(
            f"{run.file(VOCAB)} is not a textvae vocabulary ({err}): point at the --out folder "
            "of a `textvae-train` run"
        ) from None
    store = run.store_attrs()
    model = run.load_model(checkpoint)
    return model, vocab, store.get("padding", "pre"), store.get("truncating", "pre")


def encode_texts(texts, vocab: Vocabulary, max_len: int, padding="pre", truncating="pre"):
    """Token ids (len(texts), max_len) int32, padded and truncated as the store was."""
    ids = np.zeros((len(texts), max_len), dtype=np.int32)
    for row, text in enumerate(texts):
        pad_row(vocab.encode(tokenize(text)), max_len, padding, truncating, ids[row])
    return ids


def decode_latents(model, vocab: Vocabulary, z: np.ndarray) -> list[str]:
    """Greedy (arg-max) decoding of latent codes into text, padding and start ids dropped."""
    probs = model.decoder(np.asarray(z, dtype=np.float32), training=False)
    ids = keras.ops.convert_to_numpy(keras.ops.argmax(probs, axis=-1))
    return [" ".join(vocab.tokens[i] for i in row if i not in (PAD_ID, START_ID)) for row in ids]


def reconstruct(model, vocab: Vocabulary, texts, padding="pre", truncating="pre") -> list[str]:
    """Each text through the encoder's mean and back through the decoder."""
    ids = encode_texts(texts, vocab, model.max_len, padding, truncating)
    z_mean, _, _ = model.encoder(ids, training=False)
    return decode_latents(model, vocab, keras.ops.convert_to_numpy(z_mean))


def prior(model, vocab: Vocabulary, n: int, seed: int = 0) -> list[str]:
    """Decode ``n`` draws z ~ N(0, I)."""
    z = np.random.default_rng(seed).standard_normal((n, model.latent)).astype(np.float32)
    return decode_latents(model, vocab, z)


def interpolate(model, vocab, text_a, text_b, steps=5, padding="pre", truncating="pre"):
    """Decode ``steps`` points on the line between the latent means of two texts."""
    ids = encode_texts([text_a, text_b], vocab, model.max_len, padding, truncating)
    z_mean = keras.ops.convert_to_numpy(model.encoder(ids, training=False)[0])
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode_latents(model, vocab, (1 - t) * z_mean[0] + t * z_mean[1])
