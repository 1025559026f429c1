"""The model's sizes and loss weights (:class:`ModelConfig`), a frozen, validated dataclass,
and the decodings the commands use by default (:data:`SAMPLED`, :data:`RECONSTRUCTION`).

It lives in the model wing so that :mod:`textvae.model` needs nothing above it; the top-level
:mod:`textvae.config` re-exports it beside the ingest and training configs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from textvae._checks import (
    DECODER_CELLS,
    DECODERS,
    LR_SCHEDULES,
    encoder_branches,
    fraction,
    in_float32,
    int_at_least,
    non_negative,
    one_of,
    positive_int,
    positive_number,
)
from textvae._options import option
from textvae.errors import InvalidArgumentError

__all__ = ["RECONSTRUCTION", "SAMPLED", "ModelConfig"]

#: Decoding of draws from the prior and of interpolations (``textvae-sample prior|interpolate``,
#: the ``prior_*`` metrics): nucleus sampling (:func:`textvae.model.decoding.generate`'s
#: arguments). Chosen on the quick run (200 draws; docs, "The model", "Generation"): the most
#: texts that end (0.245) with rep-4 well under 0.10 (0.011); temperature 1.0 ended fewer
#: (0.18-0.19), 0.6 looped (rep-4 0.099).
SAMPLED: dict[str, float] = {"temperature": 0.8, "top_p": 0.95}

#: Decoding of a review's own latent mean (``textvae-sample reconstruct``, the
#: ``reconstruct_*`` metrics). Chosen on the quick run (200 test reviews): the best BLEU-4
#: (0.0094) of the decodings that do not loop and a unigram F1 (0.290) 0.001 below the best;
#: greedy decoding looped (rep-4 0.87, unigram F1 0.170) and never ended.
RECONSTRUCTION: dict[str, float] = {"temperature": 0.8, "top_p": 0.9}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and loss weights of the text VAE; the defaults are the seed tutorial's sizes.

    ``sentiment_weight`` weighs the sentiment cross-entropy against the reconstruction loss
    summed over time steps; 200 is the value DESIGN.md measured to reach 0.85+ test accuracy.
    ``epsilon_std`` is the sampling noise (the seed used 0.01, nearly a plain autoencoder).
    ``decoder`` is ``"autoregressive"`` (reads the review so far and z; README "The model") or
    the seed's ``"repeat"``; ``decoder_cell`` is either decoder's recurrence, ``"gru"`` (the
    seed's) or ``"lstm"`` (cuDNN's kernel on a GPU under the JAX backend); ``word_dropout`` is
    the share of the autoregressive decoder's input words replaced by ``<oov>`` in training;
    ``encoder_layers`` is the number of bidirectional LSTM layers in the encoder (the seed's
    2; 0 leaves the pooled branches alone); ``encoder_pooling`` adds a mean-pooled embedding
    branch beside the encoder's BiLSTM;
    ``bow_weight`` weighs a bag-of-words loss from z
    (Zhao et al. 2017; 0.5 measured best on the quick preset, README "Results").
    ``lr_schedule`` is Adam's learning rate over the run: ``"constant"``, or ``"linear"`` from
    ``learning_rate`` down to 0 at the run's last planned step (``epochs`` x steps per epoch).
    ``target_window`` lets the encoder read more of a review than the decoder reconstructs
    (the last ``target_window`` ids of each row, the review's end in a ``padding="pre"``
    store), ``bigram_buckets`` adds a pooled branch of hashed bigrams and ``encoder_dropout``
    drops encoder features in training (docs, "The model").
    """

    embedding_dim: int = option(
        64, help="size of each word's embedding", unit="dimensions", group="model"
    )
    hidden: int = option(500, help="units of each LSTM/GRU layer", unit="units", group="model")
    dense: int = option(
        435, help="units of the encoder's dense layer before z", unit="units", group="model"
    )
    latent: int = option(200, help="size of the latent code z", unit="dimensions", group="model")
    epsilon_std: float = option(
        1.0,
        help="sampling noise of z; the seed used 0.01",
        unit="standard deviations",
        group="model",
    )
    decoder: str = option(
        "autoregressive",
        help="autoregressive: reads the review so far and z; repeat: the seed's decoder",
        choices=DECODERS,
        group="model",
    )
    decoder_cell: str = option(
        "gru",
        help="the decoder's recurrence: gru (the seed's) or lstm (on a GPU under "
        "KERAS_BACKEND=jax one cuDNN kernel, which Keras has for an LSTM only)",
        choices=DECODER_CELLS,
        group="model",
    )
    word_dropout: float = option(
        0.25,
        help="share of the decoder's input words replaced by <oov> in training",
        unit="fraction of words",
        group="model",
    )
    encoder_layers: int = option(
        2,
        help="bidirectional LSTM layers in the encoder (the seed's 2); 0: the pooled branches "
        "alone (needs --encoder-pooling or --bigram-buckets)",
        unit="layers",
        group="model",
    )
    encoder_pooling: bool = option(
        True, help="a mean-pooled embedding branch beside the encoder's BiLSTM", group="model"
    )
    target_window: int | None = option(
        None,
        help="the decoder reconstructs the last N ids of each row (and the encoder's BiLSTM "
        "reads them); the pooled branches read the whole row. Needs a padding='pre' store",
        unit="ids",
        none="the whole row",
        group="model",
    )
    decoder_position: bool = option(
        True,
        help="the decoder reads each step's position in the row beside z, to learn where rows end",
        group="model",
    )
    bigram_buckets: int = option(
        0,
        help="a mean-pooled branch of hashed word bigrams beside the encoder's BiLSTM, "
        "this many hash buckets; 0: off",
        unit="buckets",
        group="model",
    )
    encoder_dropout: float = option(
        0.0,
        help="dropout on the encoder's features before its dense layer",
        unit="fraction of units",
        group="model",
    )
    sentiment_weight: float = option(
        200.0,
        help="weight of the sentiment loss against the reconstruction loss summed over time steps",
        unit="loss weight",
        group="model",
    )
    free_bits: float = option(
        0.0,
        help="floor of each latent unit's KL term, the free bits; 0: off",
        unit="nats per unit",
        group="model",
    )
    bow_weight: float = option(
        0.5,
        help="weight of a bag-of-words loss from z, after Zhao et al. 2017",
        unit="loss weight",
        group="model",
    )
    learning_rate: float = option(
        1e-3, help="Adam's learning rate", unit="step size", group="training"
    )
    lr_schedule: str = option(
        "constant",
        help="Adam's learning rate over the run: constant, or linear from --learning-rate down "
        "to 0 at the last planned step (--epochs x the steps of an epoch; a --resume continues "
        "the same decay)",
        choices=LR_SCHEDULES,
        group="training",
    )

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "hidden", "dense", "latent"):
            positive_int(name, getattr(self, name))
        one_of("decoder", self.decoder, DECODERS)
        one_of("decoder_cell", self.decoder_cell, DECODER_CELLS)
        one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        fraction("word_dropout", self.word_dropout)
        fraction("encoder_dropout", self.encoder_dropout)
        positive_int("target_window", self.target_window, allow_none=True)
        if int_at_least("bigram_buckets", self.bigram_buckets, 0) == 1:
            raise InvalidArgumentError(
                "`bigram_buckets` must be 0 (off) or at least 2 (bucket 0 means no bigram). "
                "Received: bigram_buckets=1"
            )
        encoder_branches(self.encoder_layers, self.encoder_pooling, self.bigram_buckets)
        for name in ("epsilon_std", "learning_rate"):
            in_float32(name, positive_number(name, getattr(self, name)))
        for name in ("sentiment_weight", "free_bits", "bow_weight"):
            in_float32(name, non_negative(name, getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data."""
        return dataclasses.asdict(self)
