"""Use a trained run: reconstruct reviews, decode draws from the prior, interpolate."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from textvae._checks import PADDINGS, int_at_least, positive_int
from textvae.data.vocab import Vocabulary, pad_row, tokenize
from textvae.errors import CheckpointError
from textvae.model import generate
from textvae.model.config import RECONSTRUCTION, SAMPLED
from textvae.training.run import BEST, CONFIG, VOCAB, RunDir

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
    padding, truncating = store.get("padding", "pre"), store.get("truncating", "pre")
    if padding not in PADDINGS or truncating not in PADDINGS:
        raise CheckpointError(
            f"{run.file(CONFIG)} is damaged (store padding={padding!r}, truncating="
            f"{truncating!r}; expected 'pre' or 'post'): restore it from the run's store"
        )
    model = run.load_model(checkpoint)
    return model, vocab, padding, truncating


def encode_texts(texts, vocab: Vocabulary, max_len: int, padding="pre", truncating="pre"):
    """Token ids (len(texts), max_len) int32, padded and truncated as the store was."""
    ids = np.zeros((len(texts), max_len), dtype=np.int32)
    for row, text in enumerate(texts):
        pad_row(vocab.encode(tokenize(text)), max_len, padding, truncating, ids[row])
    return ids


def decode_latents(
    model: keras.Model,
    vocab: Vocabulary,
    z: np.ndarray,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    allow_oov: bool = False,
    seed: int | None = 0,
) -> list[str]:
    """Latent codes decoded into text by :func:`textvae.model.decoding.generate` (greedy by default,
    sampled with ``temperature`` / ``top_p`` / ``top_k``), each up to its end or ``max_len``
    ids; start id and end dropped."""
    ids = generate(
        model, z, temperature=temperature, top_p=top_p, top_k=top_k, allow_oov=allow_oov, seed=seed
    )
    return [" ".join(vocab.decode(row)) for row in ids]


def _z_means(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model.encoder(ids, training=False)[0])


def reconstruct(
    model: keras.Model,
    vocab: Vocabulary,
    texts: list[str],
    padding: str = "pre",
    truncating: str = "pre",
    **decoding: Any,
) -> list[str]:
    """Each text through the encoder's mean and back through the decoder (``decoding``:
    :func:`decode_latents`' ``temperature``, ``top_p``, ``top_k``, ``allow_oov``, ``seed``;
    by default :data:`textvae.model.config.RECONSTRUCTION`)."""
    ids = encode_texts(texts, vocab, model.max_len, padding, truncating)
    return decode_latents(model, vocab, _z_means(model, ids), **{**RECONSTRUCTION, **decoding})


def prior(
    model: keras.Model, vocab: Vocabulary, n: int, seed: int = 0, **decoding: Any
) -> list[str]:
    """Decode ``n`` draws z ~ N(0, I) (drawn with ``seed``, which also seeds the sampling;
    ``decoding`` as for :func:`reconstruct`, by default :data:`textvae.model.config.SAMPLED`)."""
    positive_int("n", n)
    z = np.random.default_rng(seed).standard_normal((n, model.latent)).astype(np.float32)
    return decode_latents(model, vocab, z, seed=seed, **{**SAMPLED, **decoding})


def interpolate(
    model: keras.Model,
    vocab: Vocabulary,
    text_a: str,
    text_b: str,
    steps: int = 5,
    padding: str = "pre",
    truncating: str = "pre",
    **decoding: Any,
) -> list[str]:
    """Decode ``steps`` points on the line between the latent means of two texts (``decoding``
    as for :func:`reconstruct`, by default :data:`textvae.model.config.SAMPLED`)."""
    steps = int_at_least("steps", steps, 2)
    ids = encode_texts([text_a, text_b], vocab, model.max_len, padding, truncating)
    z_mean = _z_means(model, ids)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = (1 - t) * z_mean[0] + t * z_mean[1]
    return decode_latents(model, vocab, z, **{**SAMPLED, **decoding})
