"""The latent code's pieces: reparameterised sampling (:class:`Sampling`), its KL divergence from
the prior (:func:`kl_divergence`), and the bag-of-words loss that makes z carry a review's
wording (:func:`bag_of_words_nll`, Zhao et al. 2017). :class:`~textvae.model.vae.TextVAE` wires
them between its encoder and decoder. All of it is ``keras.ops``: backend independent.
"""

from __future__ import annotations

import keras
from keras import ops

from textvae.data.vocab import START_ID

__all__ = ["Sampling", "bag_of_words_nll", "kl_divergence"]


def kl_divergence(z_mean, z_log_var):
    """KL(q(z|x) || N(0, I)) per review and latent dimension, in nats, as float32.

    Parameters
    ----------
    z_mean, z_log_var
        Tensors of shape ``(batch, latent)``.

    Returns
    -------
    Tensor of shape ``(batch, latent)``; sum over the last axis for the KL per review.
    """
    z_mean = ops.cast(z_mean, "float32")
    z_log_var = ops.cast(z_log_var, "float32")
    return 0.5 * (ops.exp(z_log_var) + ops.square(z_mean) - 1.0 - z_log_var)


def bag_of_words_nll(logits, ids):
    """Negative log-likelihood of each review's words under one softmax, order ignored.

    Parameters
    ----------
    logits
        ``(batch, vocab_size)`` scores from the latent code.
    ids
        ``(batch, max_len)`` token ids; padding and the start id are not words and count 0.

    Returns
    -------
    Tensor of shape ``(batch,)``: nats per review, as float32.
    """
    logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    ids = ops.cast(ids, "int32")
    word_logp = ops.take_along_axis(logp, ids, axis=-1)  # (batch, max_len)
    words = ops.greater(ids, START_ID)
    return -ops.sum(ops.where(words, word_logp, ops.zeros_like(word_logp)), axis=-1)


@keras.saving.register_keras_serializable(package="textvae")
class Sampling(keras.layers.Layer):
    """Reparameterised sample ``z = z_mean + exp(z_log_var / 2) * epsilon``.

    ``epsilon ~ N(0, epsilon_std**2)``. The standard VAE uses ``epsilon_std=1.0``; the seed
    tutorial used 0.01, which nearly turns the VAE into a plain autoencoder. Noise is drawn only
    when ``training`` is true; otherwise the layer returns ``z_mean``, so inference
    (``predict``, ``evaluate``) is deterministic.

    Parameters
    ----------
    epsilon_std
        Standard deviation of the noise, > 0.
    seed
        Seed of the layer's random stream (``None``: drawn from Keras' global seed).
    """

    def __init__(self, epsilon_std: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(epsilon_std, bool) or not isinstance(epsilon_std, (int, float)):
            raise ValueError(
                f"`epsilon_std` must be a positive number. Received: epsilon_std={epsilon_std!r}"
            )
        if epsilon_std <= 0:
            raise ValueError(
                f"`epsilon_std` must be a positive number. Received: epsilon_std={epsilon_std!r}"
            )
        self.epsilon_std = float(epsilon_std)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        epsilon = keras.random.normal(
            ops.shape(z_mean),
            stddev=self.epsilon_std,
            dtype=self.compute_dtype,
            seed=self.seed_generator,
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon_std": self.epsilon_std, "seed": self.seed})
        return config
