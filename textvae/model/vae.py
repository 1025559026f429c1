"""The text VAE: encoder, reparameterised sampling with a KL term, decoder and sentiment head.

The encoder is the seed tutorial's, with a pooled branch beside it, and two decoders::

    ids (batch, max_len) int32
      -> Embedding(vocab_size, embedding_dim)
      -> the last target_window positions (all max_len by default)
      -> Bidirectional(LSTM(hidden, return_sequences=True)) -> Bidirectional(LSTM(hidden))
         (encoder_layers=2; one Bidirectional(LSTM(hidden)) with 1; none with 0)
         [+ the mean of the row's non-padding embeddings, encoder_pooling=True]
         [+ the mean of the row's hashed-bigram embeddings, bigram_buckets > 0]
      -> [Dropout(encoder_dropout)] -> Dense(dense, relu) -> z_mean, z_log_var: Dense(latent)
      -> Sampling -> z
    decoder input: the last target_window ids of the row (the review's end, padding="pre")
    decoder="autoregressive" (default): reads the review shifted by one (teacher forcing)
      text = the row's ids from its start id on, word ids dropped to <oov> at word_dropout
      -> Embedding(vocab_size, embedding_dim) ++ z at every step
      -> GRU(hidden), initial state Dense(hidden, tanh)(z)          (decoder_cell="gru")
         or LSTM(hidden), initial states h, c: Dense(hidden, tanh)(z) each  (decoder_cell="lstm")
      -> Dense(hidden, tanh) of [RNN output, input embedding, z]   (a direct path to the softmax)
      -> moved back to the store's positions -> Dense(vocab_size, softmax)   "reconstruction"
    decoder="repeat" (the seed's): z -> RepeatVector(target_window) -> GRU(hidden) -> GRU(hidden)
      -> Dense(vocab_size, softmax)                                         "reconstruction"
      (two LSTM(hidden) with decoder_cell="lstm")
    z_mean -> Dense(1, sigmoid)                                             "sentiment"

The seed's decoder sees no previous id (Bowman et al. 2016 call it inputless): it can only learn
the most frequent id of each position, and its samples are one token repeated. The
autoregressive decoder predicts store position ``j`` from the ids before it and ``z``, so its
output lines up with the store's rows: one-hot and sparse targets from
:class:`~textvae.batching.sequence.OneHotSequence` are used as they are
(:mod:`textvae.model.layers` does the shift inside the model). The softmax ``Dense`` is applied
to the 3-D tensor directly: Keras 3's ``TimeDistributed`` loops in Python over a static time
axis and ran out of memory at the seed's sizes (see DESIGN.md).

The loss per batch, as :func:`build_vae` compiles it::

    loss = mean_batch(sum_text_positions CE(reconstruction))   # nats per review
         + sentiment_weight * mean_labelled(BCE(sentiment))     # label -1: not counted
         + kl_weight * sum_latent(max(mean_batch(KL_d), free_bits))
         + bow_weight * mean_batch(sum_text_positions -log softmax(Dense(vocab_size)(z))[id])

The last term (``bow_weight``, 0.5 by default; 0 turns it off) is Zhao et al.'s (2017)
bag-of-words loss: a softmax over the vocabulary from z alone must predict every word of the
review, order ignored, so z has to carry the review's wording whatever the decoder learns to
do without it.

A review without a label (-1 in the store) weighs 0 in the sentiment loss and accuracy
(:mod:`textvae.model.labels`): the sentiment terms are means over the batch's labelled rows.

Padding is not text: padding positions, and the first id of each row's text (the decoder is
given it), are left out of the reconstruction loss and of every reconstruction metric, except
the end position, where the target is the pad id read as "the review ends here": the padding
position next to the text, or with ``truncating="pre"`` the first position of a row without
padding (:mod:`textvae.model.losses`; the token metrics count words only).
``kl_weight`` is a non-trainable variable on the model (set per batch by
:class:`~textvae.training.callbacks.KLAnnealing`); the KL term is added with ``add_loss`` inside
:meth:`TextVAE.call`, so it counts in ``fit`` and ``evaluate`` alike, and the true KL (nats
per review, no free bits) is reported as ``kl``.

Only the TensorFlow backend on CPU is tested. The model uses ``keras.ops`` only and is written
to stay correct under a ``mixed_float16`` policy (both output layers and the KL term are
float32, one-hot targets of any dtype are cast to float32 by the loss), but GPU, the JAX
backend and mixed precision are untested here.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
from keras import ops

from textvae._checks import (
    DECODER_CELLS,
    DECODERS,
    PADDINGS,
    TARGETS,
    encoder_branches,
    fraction,
    int_at_least,
    int_in_range,
    non_negative,
    one_of,
    positive_int,
)
from textvae.data.vocab import START_ID
from textvae.errors import CheckpointError
from textvae.model.config import ModelConfig
from textvae.model.labels import (
    LabelledBinaryAccuracy,
    LabelledBinaryCrossentropy,
    masked_sentiment,
)
from textvae.model.latent import Sampling, bag_of_words_nll, kl_divergence
from textvae.model.layers import (
    AlignToStore,
    DecoderInputs,
    HashedBigrams,
    MaskedMean,
    StepPositions,
)
from textvae.model.losses import ReconstructionLoss

__all__ = ["TextVAE", "build_vae", "load_model"]


def _bidirectional_lstm(units: int, return_sequences: bool, name: str) -> keras.layers.Layer:
    """A bidirectional LSTM with its backward layer given, not derived: Keras derives it by
    serializing the forward layer a second time, which inside ``load_model``'s object-sharing
    scope (keyed by ``id()``) can pick up another object's config (a flaky "Forward layer and
    backward layer should have different `go_backwards` value" on a second load)."""
    return keras.layers.Bidirectional(
        keras.layers.LSTM(units, return_sequences=return_sequences, name="forward_lstm"),
        backward_layer=keras.layers.LSTM(
            units, return_sequences=return_sequences, go_backwards=True, name="backward_lstm"
        ),
        name=name,
    )


def _recurrent(cell: str, units: int, name: str) -> keras.layers.Layer:
    """A decoder's recurrent layer of ``cell`` (``"gru"`` or ``"lstm"``), whole sequences out.
    Keras' defaults (tanh, sigmoid, a bias, no mask) are what its JAX backend needs to run an
    LSTM as one cuDNN kernel on a GPU; it has no such path for a GRU."""
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return layer(units, return_sequences=True, name=name)


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
    decoder
        ``"autoregressive"`` (default: reads the review so far and ``z``) or ``"repeat"`` (the
        seed's decoder: ``z`` repeated at every step, no previous ids).
    decoder_cell
        The decoder's recurrence, either decoder: ``"gru"`` (default, the seed's) or
        ``"lstm"`` (on a GPU under the JAX backend Keras runs an LSTM as one cuDNN kernel, a
        GRU step by step).
    word_dropout
        Autoregressive decoder only: the fraction of word ids of its input replaced by
        ``<oov>`` in training (Bowman et al. 2016: 0.25), so that it has to use ``z``.
    encoder_layers
        Bidirectional LSTM layers over the window in the encoder: 2 (the seed's), 1, or 0
        (the pooled branches alone: ``encoder_pooling`` or ``bigram_buckets`` needed).
    encoder_pooling
        Add the mean of the review's embeddings beside the BiLSTM's output in the encoder
        (a bag-of-words path for sentiment and wording).
    sentiment_weight
        Weight of the sentiment binary cross-entropy against the reconstruction loss summed
        over time steps (used by :func:`build_vae`); the default is
        :class:`~textvae.model.config.ModelConfig`'s.
    kl_weight
        Initial value of the ``kl_weight`` variable (the current value is saved with the model).
    free_bits
        Nats per latent dimension below which the batch-mean KL of that dimension is not
        penalised (0 turns free bits off). The ``kl`` metric always reports the plain KL.
    bow_weight
        Weight of the bag-of-words loss from ``z`` (Zhao et al. 2017; 0 turns it off and adds
        no layer; the default is :class:`~textvae.model.config.ModelConfig`'s): nats per review of
        the review's words under one softmax of ``z``, reported as the ``bow`` metric.
    targets
        ``"onehot"`` or ``"sparse"``: the form of ``y["reconstruction"]`` the loss expects
        (used by :func:`build_vae`).
    target_window
        The decoder reconstructs the last ``target_window`` ids of each row (``None``: all
        ``max_len``), and the encoder's BiLSTM reads them; the pooled branches read the whole
        row. With a ``padding="pre"`` store they hold each review's end.
    bigram_buckets
        Add the mean of hashed word-bigram embeddings (:class:`~textvae.model.layers.HashedBigrams`,
        this many buckets) beside the BiLSTM's output; 0 (the default) adds none.
    encoder_dropout
        Dropout on the encoder's features before its dense layer, in training.
    decoder_position
        Autoregressive decoder only: beside z, each step also reads its position in the row,
        ``s / target_window`` (:class:`~textvae.model.layers.StepPositions`), so it can learn
        where rows end.
    truncating
        How the store cut reviews longer than ``max_len``: ``"pre"`` (Keras' default: each
        row keeps its review's end, so the decoder learns to end rows without padding too) or
        ``"post"`` (such rows have no end: :mod:`textvae.model.losses`).
    seed
        Seed of the sampling noise.

    Attributes
    ----------
    encoder
        ``ids -> [z_mean, z_log_var, z]``.
    decoder
        ``[z, ids] -> reconstruction`` probabilities ``(batch, target_window, vocab_size)``
        (teacher-forced on the window of ``ids``); ``z -> reconstruction`` for the
        ``"repeat"`` decoder. :meth:`decoder_inputs` builds its inputs either way;
        :func:`textvae.model.decoding.generate` decodes free-running.
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
        decoder: str = ModelConfig.decoder,
        decoder_cell: str = ModelConfig.decoder_cell,
        word_dropout: float = ModelConfig.word_dropout,
        encoder_pooling: bool = ModelConfig.encoder_pooling,
        encoder_layers: int = ModelConfig.encoder_layers,
        sentiment_weight: float = ModelConfig.sentiment_weight,
        kl_weight: float = 0.0,
        free_bits: float = 0.0,
        bow_weight: float = ModelConfig.bow_weight,
        targets: str = "onehot",
        truncating: str = "pre",
        target_window: int | None = None,
        bigram_buckets: int = 0,
        encoder_dropout: float = 0.0,
        decoder_position: bool = ModelConfig.decoder_position,
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
        self.bow_weight = non_negative("bow_weight", bow_weight)
        self.targets = one_of("targets", targets, TARGETS)
        self.truncating = one_of("truncating", truncating, PADDINGS)
        window = self.max_len if target_window is None else target_window
        self.target_window = int_in_range("target_window", window, 1, self.max_len + 1)
        self.bigram_buckets = int_at_least("bigram_buckets", bigram_buckets, 0)
        if self.bigram_buckets == 1:
            raise ValueError(
                "`bigram_buckets` must be 0 (off) or at least 2. Received: bigram_buckets=1"
            )
        self.encoder_dropout = fraction("encoder_dropout", encoder_dropout)
        self.decoder_position = bool(decoder_position)
        self.decoder_type = one_of("decoder", decoder, DECODERS)
        self.decoder_cell = one_of("decoder_cell", decoder_cell, DECODER_CELLS)
        self.word_dropout = fraction("word_dropout", word_dropout)
        self.encoder_pooling = bool(encoder_pooling)
        self.encoder_layers = encoder_branches(
            encoder_layers, self.encoder_pooling, self.bigram_buckets
        )
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
        self.bow_tracker = keras.metrics.Mean(name="bow") if self.bow_weight > 0 else None

        # Encoder.
        ids = keras.Input(shape=(self.max_len,), dtype="int32", name="ids")
        embedded = keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="embedding")(
            ids
        )
        # The recurrence reads the decoder's window (the whole row by default), the pooled
        # branches the whole row.
        features = []
        if self.encoder_layers:
            x = self.window(embedded)
            for k in range(1, self.encoder_layers + 1):
                x = _bidirectional_lstm(self.hidden, k < self.encoder_layers, f"bilstm_{k}")(x)
            features.append(x)
        if self.encoder_pooling:
            features.append(MaskedMean(name="pooled_embedding")([embedded, ids]))
        if self.bigram_buckets > 0:
            bigrams = HashedBigrams(self.bigram_buckets, self.vocab_size, name="bigrams")(ids)
            embedded_bigrams = keras.layers.Embedding(
                self.bigram_buckets, self.embedding_dim, name="bigram_embedding"
            )(bigrams)
            features.append(MaskedMean(name="pooled_bigrams")([embedded_bigrams, bigrams]))
        if len(features) > 1:
            x = keras.layers.Concatenate(name="encoder_features")(features)
        else:
            x = features[0]
        if self.encoder_dropout > 0:
            x = keras.layers.Dropout(self.encoder_dropout, seed=seed, name="encoder_dropout")(x)
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

        # Bag-of-words head on z (Zhao et al. 2017): float32 like the other output layers.
        self.bow_head = (
            keras.layers.Dense(self.vocab_size, dtype="float32", name="bag_of_words")
            if self.bow_weight > 0
            else None
        )
        if self.bow_head is not None:
            self.bow_head.build((None, self.latent))

        # Decoder.
        if self.decoder_type == "repeat":
            self._build_repeat_decoder()
        else:
            self._build_autoregressive_decoder()

    def _build_repeat_decoder(self) -> None:
        z_in = keras.Input(shape=(self.latent,), name="latent_code")
        y = keras.layers.RepeatVector(self.target_window, name="repeat")(z_in)
        for k in (1, 2):
            y = _recurrent(self.decoder_cell, self.hidden, f"{self.decoder_cell}_{k}")(y)
        y = keras.layers.Dense(
            self.vocab_size, activation="softmax", dtype="float32", name="reconstruction"
        )(y)
        self.decoder = keras.Model(z_in, y, name="decoder")

    def _build_autoregressive_decoder(self) -> None:
        # Layers kept as attributes: textvae.model.decoding.generate runs them one step at a time.
        self.decoder_embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, name="decoder_embedding"
        )
        self.decoder_init = keras.layers.Dense(self.hidden, activation="tanh", name="decoder_init")
        # One attribute per cell, named after it: a GRU model saves and loads as it always did.
        if self.decoder_cell == "lstm":
            self.decoder_init_c = keras.layers.Dense(
                self.hidden, activation="tanh", name="decoder_init_c"
            )
            self.decoder_lstm = _recurrent("lstm", self.hidden, "decoder_lstm")
        else:
            self.decoder_gru = _recurrent("gru", self.hidden, "decoder_gru")
        self.decoder_projection = keras.layers.Dense(
            self.hidden, activation="tanh", name="decoder_projection"
        )
        self.reconstruction_head = keras.layers.Dense(
            self.vocab_size, activation="softmax", dtype="float32", name="reconstruction"
        )
        z_in = keras.Input(shape=(self.latent,), name="latent_code")
        ids_in = keras.Input(shape=(self.target_window,), dtype="int32", name="decoder_ids")
        # A stream of its own: the same seed as the sampling noise would correlate the two.
        dropout_seed = None if self.seed is None else self.seed + 1
        text, offsets = DecoderInputs(self.word_dropout, seed=dropout_seed, name="decoder_inputs")(
            ids_in
        )
        embedded = self.decoder_embedding(text)
        z_steps = keras.layers.RepeatVector(self.target_window, name="z_steps")(z_in)
        if self.decoder_position:  # how far into the row each step is, beside z
            z_steps = keras.layers.Concatenate(name="z_and_position")(
                [z_steps, StepPositions(name="positions")(z_steps)]
            )
        h = self.decoder_rnn(
            keras.layers.Concatenate(name="gru_inputs")([embedded, z_steps]),
            initial_state=self.decoder_initial_state(z_in),
        )
        # The input id's embedding and z also reach the softmax directly: without such a path
        # a GRU language model sat at the unigram entropy for hundreds of updates (DESIGN.md).
        features = self.decoder_projection(
            keras.layers.Concatenate(name="output_inputs")([h, embedded, z_steps])
        )
        aligned = AlignToStore(self.truncating, name="align")([features, offsets, text])
        y = self.reconstruction_head(aligned)
        self.decoder = keras.Model([z_in, ids_in], y, name="decoder")

    @property
    def decoder_rnn(self) -> keras.layers.Layer:
        """The autoregressive decoder's recurrent layer (``decoder_gru`` or ``decoder_lstm``);
        :func:`textvae.model.decoding.generate` steps its ``cell``."""
        return self.decoder_lstm if self.decoder_cell == "lstm" else self.decoder_gru

    def decoder_initial_state(self, z) -> list:
        """The autoregressive decoder's initial state from ``z``: ``[h]`` for a GRU, ``[h, c]``
        for an LSTM."""
        if self.decoder_cell == "lstm":
            return [self.decoder_init(z), self.decoder_init_c(z)]
        return [self.decoder_init(z)]

    def window(self, x) -> Any:
        """The last :attr:`target_window` positions of ``x`` ``(batch, max_len, ...)``: what
        the decoder reconstructs (all of ``x`` when the window is the whole row)."""
        return x if self.target_window == self.max_len else x[:, -self.target_window :]

    def decoder_inputs(self, z, ids) -> Any:
        """What :attr:`decoder` takes to reconstruct ``ids`` ``(batch, max_len)`` from ``z``:
        ``[z, ids]`` (the window of ``ids``: :meth:`window`), or ``z`` alone for the
        ``"repeat"`` decoder."""
        return z if self.decoder_type == "repeat" else [z, self.window(ids)]

    def init_output_bias(self, counts: Any) -> None:
        """Start the softmax at the corpus' unigram distribution (log frequencies as its bias),
        so that the first updates go to context rather than to word frequencies.

        Parameters
        ----------
        counts
            ``(vocab_size,)`` occurrences of each id among the training targets: the pad
            id's count is the number of end positions (reviews that end inside their row:
            :mod:`textvae.model.losses`), not of padding; the start id is ignored, and every id
            gets one more so none starts at probability 0.
        """
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.vocab_size,):
            raise ValueError(
                f"`counts` must have shape ({self.vocab_size},). Received: shape={counts.shape}"
            )
        counts = counts.copy()
        counts[START_ID] = 0
        logp = np.log((counts + 1) / (counts + 1).sum()).astype("float32")
        head = self.decoder.get_layer("reconstruction")
        head.bias.assign(logp)

    def build(self, input_shape=None):
        # Every layer was built when the sub-models were wired up in __init__.
        self.built = True

    def call(self, inputs, training=None):
        z_mean, z_log_var, z = self.encoder(inputs, training=training)
        penalty = kl_divergence(z_mean, z_log_var)  # (batch, latent)
        # Metric updates wait for compute_loss: JAX's stateless call has no metric variables.
        updates = [(self.kl_tracker, ops.sum(penalty, axis=-1))]
        object.__setattr__(self, "_metric_updates", updates)  # a scratch list: not tracked
        penalty = ops.mean(penalty, axis=0)
        if self.free_bits > 0:
            penalty = ops.maximum(penalty, self.free_bits)
        self.add_loss(self.kl_weight * ops.sum(penalty))
        if self.bow_head is not None:
            bow = bag_of_words_nll(self.bow_head(z), self.window(inputs))
            updates.append((self.bow_tracker, bow))
            self.add_loss(self.bow_weight * ops.mean(bow))
        return {
            "reconstruction": self.decoder(self.decoder_inputs(z, inputs), training=training),
            "sentiment": self.sentiment_head(z_mean),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras' loss, after updating the KL and bag-of-words metrics of the ``call`` just
        made. They are updated here, not in ``call``: on JAX, ``call`` runs statelessly with
        the model's weights only, and ``compute_loss`` with the metrics' variables too (the
        same trace, so the values ``call`` left are the step's own)."""
        for tracker, values in getattr(self, "_metric_updates", ()):
            tracker.update_state(values)
        object.__setattr__(self, "_metric_updates", [])
        return super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def compile_from_config(self, config):
        """Keras' ``compile_from_config``, with a checkpoint's plain sentiment cross-entropy and
        accuracy (saved before unlabelled rows were masked) read as the labelled ones."""
        self.compile(**masked_sentiment(keras.saving.deserialize_keras_object(config)))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)  # its variables, for load to fill

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
            "decoder": self.decoder_type,
            "decoder_cell": self.decoder_cell,
            "word_dropout": self.word_dropout,
            "encoder_pooling": self.encoder_pooling,
            "encoder_layers": self.encoder_layers,
            "sentiment_weight": self.sentiment_weight,
            "kl_weight": float(self.kl_weight.numpy()),
            "free_bits": self.free_bits,
            "bow_weight": self.bow_weight,
            "targets": self.targets,
            "truncating": self.truncating,
            "target_window": self.target_window,
            "bigram_buckets": self.bigram_buckets,
            "encoder_dropout": self.encoder_dropout,
            "decoder_position": self.decoder_position,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        # Checkpoints of textvae 0.1 predate these options: they hold the seed's decoder.
        config = {
            "decoder": "repeat",
            "decoder_cell": "gru",  # checkpoints without the key predate the LSTM decoder
            "word_dropout": 0.0,
            "encoder_pooling": False,
            "bow_weight": 0.0,  # checkpoints without the key predate the bag-of-words head
            "decoder_position": False,  # nor the position input
            "encoder_layers": 2,  # nor a choice of the encoder's BiLSTM layers
            **config,
        }
        return cls(**config)

    def losses_for_compile(self) -> tuple[dict, dict]:
        """The ``compile`` losses and loss weights for ``targets`` and ``sentiment_weight``."""
        loss = {
            "reconstruction": ReconstructionLoss(
                sparse=self.targets == "sparse", truncating=self.truncating
            ),
            "sentiment": LabelledBinaryCrossentropy(),
        }
        loss_weights = {"reconstruction": 1.0, "sentiment": self.sentiment_weight}
        return loss, loss_weights


def build_vae(vocab_size: int, max_len: int, learning_rate: Any = 1e-3, **kwargs) -> TextVAE:
    """Build and compile a :class:`TextVAE` (Adam, ``clipnorm=1.0``).

    Parameters
    ----------
    vocab_size, max_len
        See :class:`TextVAE`.
    learning_rate
        Adam's learning rate: a number, or a ``keras.optimizers.schedules`` schedule of the
        step count (``textvae-train --lr-schedule linear`` gives a ``PolynomialDecay``).
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
        metrics={"sentiment": [LabelledBinaryAccuracy(name="accuracy")]},
    )
    return model


def load_model(path: str | os.PathLike[str]) -> TextVAE:
    """Load a :class:`TextVAE` saved as ``.keras`` (``best.keras`` / ``last.keras`` of a run).

    ``keras.saving.load_model`` alone needs textvae's Keras classes registered, which
    ``import textvae`` does not do (it stays free of TensorFlow); this does, and refuses files
    that are not a textvae model.

    Raises
    ------
    CheckpointError
        The file is missing, damaged, or holds another kind of model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist: point at a .keras file of a textvae run")
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # a damaged or foreign file: many exception types
        raise CheckpointError(f"cannot load {path} ({type(err).__name__}: {err})") from None
    if not isinstance(model, TextVAE):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a textvae model")
    return model
