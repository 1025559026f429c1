"""Keras layers of the text VAE's autoregressive decoder and pooled encoder branch.

A store row is a review padded to ``max_len`` ids (padding ``pre`` or ``post``), the text a
contiguous block ``[START, w1, ..., wn]`` of non-zero ids. The decoder reads the text from its
start, whatever the padding:

- :class:`DecoderInputs` moves each row's text to the front (``[START, w1, ..., wn, 0, ...]``;
  a row cut mid-review also starts with ``START``), applies word dropout in training, and
  returns the per-row offset of the text in the row;
- a recurrent decoder reads those ids (step ``s`` sees ``text[s]`` and predicts ``text[s + 1]``),
  beside ``z`` and the step's position ``s / steps`` (:class:`StepPositions`);
- :class:`AlignToStore` moves the decoder's features back to the store's positions, so the
  prediction for store position ``j`` sits at ``j``: targets from the store (one-hot or sparse)
  need no change, and padding and each row's first text position get zero features (the
  loss leaves them out), except the row's end position (next to the text, or the first
  position of a row without padding), which gets the features of the step that read the
  text's last id (:mod:`textvae.model.losses`).

The encoder's pooled branches read the whole row: :class:`MaskedMean` averages embeddings of
non-padding ids, :class:`HashedBigrams` gives each pair of adjacent words a hashed id for them.

All of it is ``keras.ops``: backend independent.
"""

from __future__ import annotations

import keras
from keras import ops

from textvae._checks import PADDINGS, fraction, int_at_least, one_of
from textvae.data.vocab import FIRST_WORD_ID, OOV_ID, PAD_ID, START_ID

__all__ = ["AlignToStore", "DecoderInputs", "HashedBigrams", "MaskedMean", "StepPositions"]


@keras.saving.register_keras_serializable(package="textvae")
class DecoderInputs(keras.layers.Layer):
    """``ids (batch, max_len) -> (text, offsets)``: each row's text moved to the front.

    ``text[b, s]`` is ``ids[b, offsets[b] + s]`` (0 past the row's end) and ``offsets[b]`` the
    position of the row's first non-padding id, except that every row's text starts with the
    start id: a row cut at ``max_len`` (or the window of a longer row) begins mid-review, and
    its first id, given to the decoder and never predicted, is read as ``<start>``, as
    generation begins. In training, each word id of ``text`` (ids
    ``>= 3``: never padding nor the start id) is replaced by the out-of-vocabulary id with
    probability ``word_dropout`` (Bowman et al. 2016), so the decoder has to lean on ``z``.

    Parameters
    ----------
    word_dropout
        Fraction of word ids replaced by ``<oov>`` in training, in [0, 1).
    seed
        Seed of the dropout's random stream.
    """

    def __init__(self, word_dropout: float = 0.25, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.word_dropout = fraction("word_dropout", word_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        ids = ops.cast(ids, "int32")
        length = ops.shape(ids)[1]
        text_mask = ops.not_equal(ids, PAD_ID)
        offsets = ops.cast(ops.argmax(ops.cast(text_mask, "int32"), axis=1), "int32")
        source = ops.arange(length, dtype="int32")[None, :] + offsets[:, None]
        inside = ops.less(source, length)
        text = ops.take_along_axis(ids, ops.minimum(source, length - 1), axis=1)
        text = ops.where(inside, text, ops.zeros_like(text))
        # Every row's text reads from the start id, as generation does: a row cut at max_len
        # (or a window) begins mid-review, and its first id is given, never predicted.
        first = ops.equal(ops.arange(length, dtype="int32"), 0)[None, :]
        starts = ops.logical_and(first, ops.not_equal(text, PAD_ID))
        text = ops.where(starts, ops.full_like(text, START_ID), text)
        if training and self.word_dropout > 0:
            draw = keras.random.uniform(ops.shape(text), seed=self.seed_generator)
            drop = ops.logical_and(
                ops.greater_equal(text, FIRST_WORD_ID), ops.less(draw, self.word_dropout)
            )
            text = ops.where(drop, ops.full_like(text, OOV_ID), text)
        return text, offsets

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update({"word_dropout": self.word_dropout, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="textvae")
class AlignToStore(keras.layers.Layer):
    """``(features, offsets[, text]) -> features`` at the store's positions.

    ``features[b, s]`` (from the decoder step that read ``text[s]``) predicts ``text[s + 1]``,
    which the store holds at position ``offsets[b] + s + 1``. The output puts it there. The
    step that read the text's last id predicts the end of the review
    (:mod:`textvae.model.losses`): with ``padding="post"`` that is the position right after the
    text, where the rule above already puts it; with ``"pre"`` (the text ends the row, so
    ``offsets[b] > 0`` means the row has padding) it goes to the padding position right before
    the text, ``offsets[b] - 1``. Given ``text`` (:class:`DecoderInputs`' first output) and
    ``truncating="pre"``, a row without padding has its end at position 0 (its given first id:
    :func:`textvae.model.losses.full_row_ends`), and gets that step there. The other padding
    positions and the row's first text position get zeros.

    Parameters
    ----------
    truncating
        How the store cut long reviews: ``"pre"`` (the end kept) or ``"post"``.
    """

    def __init__(self, truncating: str = "pre", **kwargs):
        super().__init__(**kwargs)
        self.truncating = one_of("truncating", truncating, PADDINGS)

    def call(self, inputs):
        features, offsets = inputs[0], inputs[1]
        length = ops.shape(features)[1]
        position = ops.arange(length, dtype="int32")[None, :]
        step = position - offsets[:, None] - 1
        # padding="pre": the text fills [offset, length), its last id is text[length - offset - 1]
        end_before = ops.equal(position, offsets[:, None] - 1)
        step = ops.where(end_before, length - 1 - offsets[:, None], step)
        if len(inputs) > 2 and self.truncating == "pre":
            full = ops.not_equal(inputs[2][:, -1:], PAD_ID)  # the text reaches the row's end
            step = ops.where(ops.logical_and(full, ops.equal(position, 0)), length - 1, step)
        valid = ops.greater_equal(step, 0)
        gathered = ops.take_along_axis(features, ops.maximum(step, 0)[:, :, None], axis=1)
        return ops.where(valid[:, :, None], gathered, ops.zeros_like(gathered))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"truncating": self.truncating})
        return config


@keras.saving.register_keras_serializable(package="textvae")
class MaskedMean(keras.layers.Layer):
    """``(embedded, ids) -> (batch, dim)``: the mean of the embeddings of non-padding ids."""

    def call(self, inputs):
        embedded, ids = inputs
        mask = ops.cast(ops.not_equal(ids, PAD_ID), embedded.dtype)[:, :, None]
        total = ops.sum(embedded * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])


#: The multiplier of the bigram hash, ``first * BIGRAM_PRIME + second``: a prime, so that
#: adjacent word pairs spread over the buckets; ids stay in int32 while
#: ``vocab_size * (BIGRAM_PRIME + 1) < 2**31`` (vocabularies up to 271,000 words).
BIGRAM_PRIME = 7919


@keras.saving.register_keras_serializable(package="textvae")
class HashedBigrams(keras.layers.Layer):
    """``ids (batch, max_len) -> (batch, max_len - 1)`` hashed ids of adjacent word pairs.

    The pair ``(ids[:, s], ids[:, s + 1])`` of two words (ids ``>= 3``: not padding, the start
    id nor ``<oov>``) gets ``1 + (first * 7919 + second) % (buckets - 1)``; any other pair gets
    0, the pad id, which :class:`MaskedMean` leaves out. Embedded and mean-pooled, they are a
    fastText-style bigram branch (Joulin et al. 2017) beside the encoder's recurrence.

    Parameters
    ----------
    buckets
        Hash buckets, at least 2 (bucket 0 means "no bigram").
    vocab_size
        Ids run over ``[0, vocab_size)``; checked so that the hash stays in int32.
    """

    def __init__(self, buckets: int, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = int_at_least("buckets", buckets, 2)
        self.vocab_size = int_at_least("vocab_size", vocab_size, 1)
        if self.vocab_size * (BIGRAM_PRIME + 1) >= 2**31:
            raise ValueError(
                f"`vocab_size` must be below {2**31 // (BIGRAM_PRIME + 1):,} for hashed bigrams "
                f"(the hash is int32). Received: vocab_size={vocab_size}; use bigram_buckets=0"
            )

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        first, second = ids[:, :-1], ids[:, 1:]
        words = ops.logical_and(
            ops.greater_equal(first, FIRST_WORD_ID), ops.greater_equal(second, FIRST_WORD_ID)
        )
        hashed = 1 + ops.mod(first * BIGRAM_PRIME + second, self.buckets - 1)
        return ops.where(words, hashed, ops.zeros_like(hashed))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] - 1)

    def get_config(self):
        config = super().get_config()
        config.update({"buckets": self.buckets, "vocab_size": self.vocab_size})
        return config


@keras.saving.register_keras_serializable(package="textvae")
class StepPositions(keras.layers.Layer):
    """``x (batch, steps, ...) -> (batch, steps, 1)``: each decoder step's position ``s / steps``.

    Read beside each id, it tells the decoder how far into its row it is, so that it can learn
    where rows end (a window cut from a longer review ends at the window's end).
    :func:`textvae.model.decoding.generate` feeds the same value, ``s / target_window``.
    """

    def call(self, x):
        steps = ops.shape(x)[1]
        position = ops.cast(ops.arange(steps), self.compute_dtype) / ops.cast(
            steps, self.compute_dtype
        )
        return ops.broadcast_to(position[None, :, None], (ops.shape(x)[0], steps, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 1)
