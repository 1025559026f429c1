"""The text VAE: encoder, reparameterised sampling with a KL term, decoder and sentiment head.

The architecture is the seed tutorial's, with its sizes as defaults::

    ids (batch, max_len) int32
      -> Embedding(vocab_size, embedding_dim)
      -> Bidirectional(LSTM(hidden, return_sequences=True)) -> Bidirectional(LSTM(hidden))
      -> Dense(dense, relu) -> z_mean, z_log_var: Dense(latent) each
      -> Sampling -> z
    z -> RepeatVector(max_len) -> GRU(hidden) -> GRU(hidden)
      -> Dense(vocab_size, softmax) on the 3-D tensor            "reconstruction"
    z_mean -> Dense(1, sigmoid)                                  "sentiment"

The softmax ``Dense`` is applied to the 3-D decoder output directly: Keras 3's
``TimeDistributed`` loops in Python over a static time axis and ran out of memory at the seed's
sizes (see DESIGN.md).

The loss per batch, as :func:`build_vae` compiles it::

    loss = mean_batch(sum_time CE(reconstruction))       # nats per review
         + sentiment_weight * mean_batch(BCE(sentiment))
         + kl_weight * sum_latent(max(mean_batch(KL_d), free_bits))

``kl_weight`` is a non-trainable variable on the model (set per batch by
:class:`~textvae.callbacks.KLAnnealing`); the KL term is added with ``add_loss`` inside
:meth:`TextVAE.call`, so it counts in ``fit`` and ``evaluate`` alike, and the true KL (nats
per review, no free bits) is reported as the metric ``kl``.

Only the TensorFlow backend on CPU is tested. The model is written to stay correct under a
``mixed_float16`` policy (both output layers and the KL term are float32, one-hot targets of
any dtype are cast to float32 by the loss), but GPU and mixed precision are untested.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import keras
from keras import ops

from textvae._checks import TARGETS, non_negative, one_of, positive_int
from textvae.config import ModelConfig

__all__ = [
    "ReconstructionLoss",
    "Sampling",
    "TextVAE",
    "build_vae",
    "kl_divergence",
]


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


@keras.saving.register_keras_serializable(package="textvae")
class ReconstructionLoss(keras.losses.Loss):
    """Cross-entropy summed over time steps: nats per review, averaged over the batch.

    ``sparse=False`` takes one-hot targets ``(batch, max_len, vocab)`` of any dtype (float32,
    float16, uint8: cast to the loss dtype); ``sparse=True`` takes the ids ``(batch, max_len)``.
    Both give the same value for the same data.
    """

    def __init__(
        self,
        sparse: bool = False,
        name: str = "reconstruction_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.sparse = bool(sparse)

    def call(self, y_true, y_pred):
        if self.sparse:
            per_step = ops.sparse_categorical_crossentropy(y_true, y_pred)
        else:
            per_step = ops.categorical_crossentropy(y_true, y_pred)
        return ops.sum(per_step, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"sparse": self.sparse})
        return config


@keras.saving.register_keras_serializable(package="textvae")
class TextVAE(keras.Model):
    """The seed tutorial's text VAE with a sentiment head on the latent code.

    Parameters
    ----------
    vocab_size, max_len
        Ids run over ``[0, vocab_size)``; every review is ``max_len`` ids.
    embedding_dim, hidden, dense, latent
        Layer sizes: embedding, LSTM/GRU units (each LSTM direction), the dense layer before
        the latent code, and the latent dimension.
    epsilon_std
        Standard deviation of the sampling noise (the seed used 0.01).
    sentiment_weight
        Weight of the sentiment binary cross-entropy against the reconstruction loss summed
        over time steps (used by :func:`build_vae`); the default is
        :class:`~textvae.config.ModelConfig`'s.
    kl_weight
        Initial value of the ``kl_weight`` variable (the current value is saved with the model).
    free_bits
        Nats per latent dimension below which the batch-mean KL of that dimension is not
        penalised (0 turns free bits off). The ``kl`` metric always reports the plain KL.
    targets
        ``"onehot"`` or ``"sparse"``: the form of ``y["reconstruction"]`` the loss expects
        (used by :func:`build_vae`).
    seed
        Seed of the sampling noise.

    Attributes
    ----------
    encoder
        ``ids -> [z_mean, z_log_var, z]``.
    decoder
        ``z -> reconstruction`` probabilities ``(batch, max_len, vocab_size)``.
    sentiment_predictor
        ``ids -> sentiment`` probability ``(batch, 1)`` through ``z_mean``.
    kl_weight
        Non-trainable scalar variable weighting the KL term.

    All three sub-models share their layers (and so their weights) with the full model.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        embedding_dim: int = 64,
        hidden: int = 500,
        dense: int = 435,
        latent: int = 200,
        epsilon_std: float = 1.0,
        sentiment_weight: float = ModelConfig.sentiment_weight,
        kl_weight: float = 0.0,
        free_bits: float = 0.0,
        targets: str = "onehot",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.max_len = positive_int("max_len", max_len)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        self.hidden = positive_int("hidden", hidden)
        self.dense = positive_int("dense", dense)
        self.latent = positive_int("latent", latent)
        self.sentiment_weight = non_negative("sentiment_weight", sentiment_weight)
        self.free_bits = non_negative("free_bits", free_bits)
        self.targets = one_of("targets", targets, TARGETS)
        self.epsilon_std = epsilon_std
        self.seed = seed

        self.kl_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(non_negative("kl_weight", kl_weight)),
            trainable=False,
            dtype="float32",
            name="kl_weight",
        )
        self.kl_tracker = keras.metrics.Mean(name="kl")

        # Encoder.
        ids = keras.Input(shape=(self.max_len,), dtype="int32", name="ids")
        x = keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="embedding")(ids)
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(self.hidden, return_sequences=True), name="bilstm_1"
        )(x)
        x = keras.layers.Bidirectional(keras.layers.LSTM(self.hidden), name="bilstm_2")(x)
        x = keras.layers.Dense(self.dense, activation="relu", name="encoder_dense")(x)
        z_mean = keras.layers.Dense(self.latent, name="z_mean")(x)
        z_log_var = keras.layers.Dense(self.latent, name="z_log_var")(x)
        z = Sampling(epsilon_std=epsilon_std, seed=seed, name="z")([z_mean, z_log_var])
        self.encoder = keras.Model(ids, [z_mean, z_log_var, z], name="encoder")

        # Sentiment head on the latent code (the mean: deterministic at inference).
        # float32 so a mixed_float16 policy keeps the loss in float32.
        self.sentiment_head = keras.layers.Dense(
            1, activation="sigmoid", dtype="float32", name="sentiment"
        )
        self.sentiment_predictor = keras.Model(
            ids, self.sentiment_head(z_mean), name="sentiment_predictor"
        )

        # Decoder.
        z_in = keras.Input(shape=(self.latent,), name="latent_code")
        y = keras.layers.RepeatVector(self.max_len, name="repeat")(z_in)
        y = keras.layers.GRU(self.hidden, return_sequences=True, name="gru_1")(y)
        y = keras.layers.GRU(self.hidden, return_sequences=True, name="gru_2")(y)
        y = keras.layers.Dense(
            self.vocab_size, activation="softmax", dtype="float32", name="reconstruction"
        )(y)
        self.decoder = keras.Model(z_in, y, name="decoder")

    def build(self, input_shape=None):
        # Every layer was built when the sub-models were wired up in __init__.
        self.built = True

    def call(self, inputs, training=None):
        z_mean, z_log_var, z = self.encoder(inputs, training=training)
        penalty = kl_divergence(z_mean, z_log_var)  # (batch, latent)
        self.kl_tracker.update_state(ops.sum(penalty, axis=-1))
        penalty = ops.mean(penalty, axis=0)
        if self.free_bits > 0:
            penalty = ops.maximum(penalty, self.free_bits)
        self.add_loss(self.kl_weight * ops.sum(penalty))
        return {
            "reconstruction": self.decoder(z, training=training),
            "sentiment": self.sentiment_head(z_mean),
        }

    def get_config(self):
        # Deliberately not chaining keras.Model.get_config: it describes functional models.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocab_size": self.vocab_size,
            "max_len": self.max_len,
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "dense": self.dense,
            "latent": self.latent,
            "epsilon_std": self.epsilon_std,
            "sentiment_weight": self.sentiment_weight,
            "kl_weight": float(self.kl_weight.numpy()),
            "free_bits": self.free_bits,
            "targets": self.targets,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def losses_for_compile(self) -> tuple[dict, dict]:
        """The ``compile`` losses and loss weights for ``targets`` and ``sentiment_weight``."""
        loss = {
            "reconstruction": ReconstructionLoss(sparse=self.targets == "sparse"),
            "sentiment": keras.losses.BinaryCrossentropy(),
        }
        loss_weights = {"reconstruction": 1.0, "sentiment": self.sentiment_weight}
        return loss, loss_weights


def build_vae(vocab_size: int, max_len: int, learning_rate: float = 1e-3, **kwargs) -> TextVAE:
    """Build and compile a :class:`TextVAE` (Adam, ``clipnorm=1.0``).

    Parameters
    ----------
    vocab_size, max_len
        See :class:`TextVAE`.
    learning_rate
        Adam's learning rate.
    **kwargs
        Any other :class:`TextVAE` argument (``hidden``, ``latent``, ``targets``,
        ``sentiment_weight``, ...).

    Returns
    -------
    The built, compiled model. Logs of ``fit``/``evaluate`` hold ``loss``,
    ``reconstruction_loss`` (nats per review), ``sentiment_loss``, ``sentiment_accuracy`` and
    ``kl`` (nats per review).
    """
    model = TextVAE(vocab_size, max_len, **kwargs)
    model.build((None, max_len))
    loss, loss_weights = model.losses_for_compile()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        loss=loss,
        loss_weights=loss_weights,
        metrics={"sentiment": [keras.metrics.BinaryAccuracy(name="accuracy")]},
    )
    return model


# Moved in this release; the old names work for one more release, with a DeprecationWarning.
_MOVED = {
    "KLAnnealing": "textvae.callbacks",
    "active_units": "textvae.metrics",
    "token_accuracy": "textvae.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"textvae.model.{name} moved to {_MOVED[name]}.{name}; the old name will be removed "
            "in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'textvae.model' has no attribute {name!r}")
