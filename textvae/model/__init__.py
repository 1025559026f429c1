"""The model wing: the text VAE, its layers and losses, decoding, and the metrics in NumPy.

=========================  ===================================================================
:mod:`.vae`                :class:`TextVAE`, :func:`build_vae`, :func:`load_model`, the sampling
                           layer and the KL / bag-of-words terms
:mod:`.losses`             the reconstruction loss and the positions it scores (the end too)
:mod:`.labels`             the sentiment loss and accuracy over labelled reviews (-1: unlabelled)
:mod:`.layers`             the decoder's input and alignment layers, the pooled encoder branch
:mod:`.decoding`           :func:`generate`: latent codes -> token ids, free-running
:mod:`.metrics`            token accuracy, active units, BLEU, unigram F1, the evaluation sums
:mod:`.config`             :class:`ModelConfig`: the model's sizes and loss weights
=========================  ===================================================================

The wing imports nothing above it (not :mod:`textvae.config`, :mod:`textvae.training` nor the
CLI). Its names load on first use: ``textvae.config`` imports :mod:`textvae.model.config`, and
that must not import Keras (``import textvae`` stays free of it).
"""

from __future__ import annotations

from textvae._lazy import attach

__all__ = [
    "AlignToStore",
    "DecoderInputs",
    "HashedBigrams",
    "LabelledBinaryAccuracy",
    "LabelledBinaryCrossentropy",
    "MaskedMean",
    "ModelConfig",
    "ReconstructionLoss",
    "Sampling",
    "StepPositions",
    "TextVAE",
    "bag_of_words_nll",
    "build_vae",
    "generate",
    "kl_divergence",
    "load_model",
]

#: Each public name -> the module of this wing that holds it.
_HOMES = {
    "AlignToStore": "textvae.model.layers",
    "DecoderInputs": "textvae.model.layers",
    "HashedBigrams": "textvae.model.layers",
    "LabelledBinaryAccuracy": "textvae.model.labels",
    "LabelledBinaryCrossentropy": "textvae.model.labels",
    "MaskedMean": "textvae.model.layers",
    "ModelConfig": "textvae.model.config",
    "ReconstructionLoss": "textvae.model.losses",
    "Sampling": "textvae.model.latent",
    "StepPositions": "textvae.model.layers",
    "TextVAE": "textvae.model.vae",
    "bag_of_words_nll": "textvae.model.latent",
    "build_vae": "textvae.model.vae",
    "generate": "textvae.model.decoding",
    "kl_divergence": "textvae.model.latent",
    "load_model": "textvae.model.vae",
}

__getattr__, __dir__ = attach(__name__, _HOMES)
