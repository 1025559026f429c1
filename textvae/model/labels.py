"""The sentiment head's loss and accuracy, which count labelled reviews only.

A store marks a review without a label with -1 (``build_store_from_texts`` with labels for some
splits, a corpus with unlabelled reviews). Read as a binary target, -1 turns the cross-entropy
into ``log p - 2 log(1 - p)``, negative below ``p`` = 0.38 and down to ``log(1e-7)`` = -16 per
row: the head is rewarded for pushing ``p`` to 0 and the loss goes below 0.

Here a row whose label is negative weighs 0 in the loss and in the accuracy, whatever the data
pipeline (so in training, validation and ``evaluate`` alike, on every backend), and the loss is
the mean over the labelled rows of the batch: the same value as on a batch of those rows alone,
0 for a batch without a labelled row.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "LabelledBinaryAccuracy",
    "LabelledBinaryCrossentropy",
    "labelled_weight",
    "masked_sentiment",
]


def labelled_weight(y_true, sample_weight=None):
    """float32 ``(batch,)``: 1 for a labelled row (label >= 0), 0 for an unlabelled one (-1),
    times ``sample_weight`` (``(batch,)`` or ``(batch, 1)``) when given."""
    y_true = ops.convert_to_tensor(y_true)
    weight = ops.cast(
        ops.greater_equal(ops.reshape(y_true, (ops.shape(y_true)[0], -1))[:, 0], 0), "float32"
    )
    if sample_weight is not None:
        sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
        weight = weight * ops.reshape(sample_weight, (ops.shape(weight)[0],))
    return weight


def _targets(y_true):
    """The 0/1 targets, 0 in place of an unlabelled row's -1 (its weight is 0)."""
    y_true = ops.cast(y_true, "float32")
    return ops.where(ops.greater_equal(y_true, 0.0), y_true, ops.zeros_like(y_true))


@keras.saving.register_keras_serializable(package="textvae")
class LabelledBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy over the labelled rows of a batch (label -1: weight 0).

    The batch's loss is ``sum(w * BCE) / sum(w)`` with ``w`` 1 for a labelled row and 0 for an
    unlabelled one (times any ``sample_weight`` given): the mean over labelled rows, 0 when the
    batch has none.
    """

    def __init__(
        self,
        name: str = "labelled_binary_crossentropy",
        reduction: str = "mean_with_sample_weight",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return super().__call__(
            y_true, y_pred, sample_weight=labelled_weight(y_true, sample_weight)
        )

    def call(self, y_true, y_pred):
        return keras.losses.binary_crossentropy(_targets(y_true), ops.cast(y_pred, "float32"))


@keras.saving.register_keras_serializable(package="textvae")
class LabelledBinaryAccuracy(keras.metrics.BinaryAccuracy):
    """Binary accuracy over the labelled rows seen (label -1: not counted); NaN while none is."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        weight = labelled_weight(y_true, sample_weight)
        return super().update_state(_targets(y_true), y_pred, sample_weight=weight)

    def result(self):
        return ops.where(
            ops.greater(self.count, 0.0),
            ops.divide_no_nan(self.total, self.count),
            ops.cast(float("nan"), self.total.dtype),
        )


def masked_sentiment(config: dict) -> dict:
    """A deserialized compile config with the sentiment output's plain binary cross-entropy
    and binary accuracy (checkpoints saved before -1 was masked) replaced by the labelled ones."""
    loss = config.get("loss")
    if isinstance(loss, dict) and type(loss.get("sentiment")) is keras.losses.BinaryCrossentropy:
        config["loss"] = {**loss, "sentiment": LabelledBinaryCrossentropy()}
    metrics = config.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("sentiment"), list):
        config["metrics"] = {
            **metrics,
            "sentiment": [
                LabelledBinaryAccuracy(name=m.name)
                if type(m) is keras.metrics.BinaryAccuracy
                else m
                for m in metrics["sentiment"]
            ],
        }
    return config
