"""The reconstruction loss, and where in a store row a decoder is scored.

A store row is a review padded to ``max_len`` ids, its text a contiguous block
``[START, w1, ..., wn]`` of non-zero ids (padding ``pre`` or ``post``). A decoder is scored at

- every text position but the first (the start id, or the first kept word of a review cut at
  ``max_len``): it is given that id, it predicts the rest;
- the **end position**: the one padding position next to the text (right after it with
  ``padding="post"``, right before it with ``"pre"``), where the target is the pad id, read as
  "the review ends here". A row with no padding (a review cut at ``max_len``, or exactly that
  long) ends where its text ends when the store kept each review's end (``truncating="pre"``,
  Keras' default): its end position is the row's first position, whose id the decoder is
  given and never scored, and the target there is read as the pad id. With
  ``truncating="post"`` such a row has no end position: where its review ends is not known.
  The store is unchanged; every other padding position counts 0.

:class:`~textvae.model.layers.AlignToStore` puts the decoder's prediction after the last text
id at that position, and :func:`textvae.model.decoding.generate` stops a row where it chooses
the pad id.
"""

from __future__ import annotations

import keras
from keras import ops

from textvae._checks import PADDINGS, one_of
from textvae.data.vocab import PAD_ID

__all__ = ["ReconstructionLoss", "full_row_ends", "scored_positions"]


def full_row_ends(text, truncating: str = "pre"):
    """Where a row without padding ends (``keras.ops``): its first position, with
    ``truncating="pre"`` (the store kept each review's end); nowhere with ``"post"``.

    Parameters
    ----------
    text
        ``(batch, max_len)`` booleans: True where the row holds a non-padding id.
    truncating
        How the store cut reviews longer than ``max_len`` (:class:`~textvae.data.format.StoreSpec`).

    Returns
    -------
    ``(batch, max_len)`` booleans, True only at position 0 of a row that is all text.
    """
    text = ops.cast(text, "bool")
    first = ops.equal(ops.arange(ops.shape(text)[1], dtype="int32"), 0)[None, :]
    if one_of("truncating", truncating, PADDINGS) == "post":
        return ops.zeros_like(text)
    full = ops.all(text, axis=-1, keepdims=True)
    return ops.logical_and(full, first)


def scored_positions(text, truncating: str = "pre"):
    """Where a decoder is scored, from the text mask of store rows (``keras.ops``).

    Parameters
    ----------
    text
        ``(batch, max_len)`` booleans: True where the row holds a non-padding id.
    truncating
        How the store cut reviews longer than ``max_len``: ``"pre"`` (the end kept) also
        scores the end of rows without padding, at their first position (:func:`full_row_ends`).

    Returns
    -------
    ``(batch, max_len)`` booleans: every text position but the row's first, and the row's end
    position (the padding position next to the text; see above for rows without padding).
    """
    text = ops.cast(text, "bool")
    later_text = ops.greater(ops.cumsum(ops.cast(text, "int32"), axis=-1), 1)
    none = ops.zeros_like(text[:, :1])
    after_text = ops.concatenate([none, text[:, :-1]], axis=1)  # padding="post"
    before_text = ops.concatenate([text[:, 1:], none], axis=1)  # padding="pre"
    end = ops.logical_and(ops.logical_not(text), ops.logical_or(after_text, before_text))
    end = ops.logical_or(end, full_row_ends(text, truncating))
    return ops.logical_or(ops.logical_and(text, later_text), end)


@keras.saving.register_keras_serializable(package="textvae")
class ReconstructionLoss(keras.losses.Loss):
    """Cross-entropy summed over the scored positions of a review: nats per review, batch mean.

    The scored positions (:func:`scored_positions`) are the text positions after the first
    (the decoder is given the first id, it does not predict it) and the end position, where the
    target is the pad id: the decoder learns where a review ends. Other padding positions are
    left out (padding is not text). ``sparse=False`` takes one-hot targets
    ``(batch, max_len, vocab)`` of any dtype (float32, float16, uint8: cast to the loss dtype);
    ``sparse=True`` takes the ids ``(batch, max_len)``. Both give the same value for the same
    data. ``truncating`` is the store's (``"pre"``: rows without padding end too, at their
    first position, where the target is read as the pad id: :func:`full_row_ends`).
    """

    def __init__(
        self,
        sparse: bool = False,
        truncating: str = "pre",
        name: str = "reconstruction_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.sparse = bool(sparse)
        self.truncating = one_of("truncating", truncating, PADDINGS)

    def call(self, y_true, y_pred):
        if self.sparse:
            text = ops.not_equal(y_true, PAD_ID)
            ends = full_row_ends(text, self.truncating)
            y_true = ops.where(ends, ops.zeros_like(y_true), y_true)
            per_step = ops.sparse_categorical_crossentropy(y_true, y_pred)
        else:
            y_true = ops.cast(y_true, y_pred.dtype)
            per_step = ops.categorical_crossentropy(y_true, y_pred)
            text = ops.less(y_true[..., PAD_ID], 0.5)
            ends = full_row_ends(text, self.truncating)
            if self.truncating == "pre":
                # The end of a row without padding: its target is the pad id, not the id there.
                end_step = -ops.log(ops.clip(y_pred[..., PAD_ID], keras.config.epsilon(), 1.0))
                per_step = ops.where(ends, end_step, per_step)
        scored = scored_positions(text, self.truncating)
        return ops.sum(ops.where(scored, per_step, ops.zeros_like(per_step)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"sparse": self.sparse, "truncating": self.truncating})
        return config
