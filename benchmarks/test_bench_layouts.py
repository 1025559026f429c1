"""Batch layouts through Keras' PyDataset path, beside a ``tf.data`` pipeline that builds the
same layout with ``tf.one_hot``.

Each layout has one-hot float32 targets (the expensive part): next-token targets alone
(``outputs="next_onehot"``), a named input with next-token targets and the padding mask as
sample weights, and one-hot reconstruction targets beside class ids with the mask. The
``tf.data`` reference reads the same ids, labels and lengths, shuffles, batches and builds the
same arrays in a parallel ``map`` (shifted ids, ``tf.one_hot``, the mask from the lengths),
warmed up before timing, as in ``test_bench_sequence.py``. One round is one batch pulled from
the iterator and dropped, as ``fit`` does. ``--full``: (64, 300, 20000) from the IMDB-sized
store; small otherwise. The ratios are printed at the end of the run and in the report
(``report.py``, "Batch layouts"); the target is >= 2x the ``tf.data`` pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_bench_sequence import (
    MAX_QUEUE_SIZE,
    MEMORY_BUDGET,
    SPLIT,
    Pipeline,
    _keras_path,
    _name,
    time_pipeline,
)

from textvae.batching import BatchLayout, MemoryOptions, OneHotSequence
from textvae.testing import assert_batch_matches_store

#: name -> OneHotSequence layout arguments; every one has one-hot float32 targets.
LAYOUTS = {
    "next_onehot": {"outputs": "next_onehot"},
    "lm_named_masked": {
        "inputs": "tokens",
        "outputs": {"lm": "next_onehot"},
        "sample_weight": "mask",
    },
    "onehot_classes_masked": {
        "outputs": {"recon": "onehot", "label": "classes"},
        "sample_weight": "mask",
    },
}
PIPELINES = ["textvae-w1", "textvae-w2", "tf.data"]


@pytest.fixture(scope="module")
def shape(train_store, full):
    return (64 if full else 8, train_store.max_len, train_store.vocab_size)


@pytest.fixture(scope="module")
def rounds(full):
    """(warm-up batches, timed batches), as in test_bench_sequence.py."""
    return (10, 24) if full else (2, 5)


@pytest.fixture(scope="module")
def arrays(train_store):
    """(ids int32, labels int32, lengths int32) of the whole split."""
    return (
        train_store.read(SPLIT, slice(None)).astype(np.int32),
        train_store.labels(SPLIT).astype(np.int32),
        train_store.lengths(SPLIT).astype(np.int32),
    )


def _tf_data(arrays, shape, layout: str, padding: str) -> Pipeline:
    """The tf.data pipeline a Keras user writes for ``layout``."""
    import tensorflow as tf

    ids, labels, lengths = arrays
    _, max_len, vocab_size = shape
    positions = tf.range(max_len)

    def mask_of(n):
        real = tf.minimum(n, max_len)[:, None]
        keep = positions[None, :] >= max_len - real if padding == "pre" else positions < real
        return tf.cast(keep, tf.float32)

    def next_of(x):
        return tf.concat([x[:, 1:], tf.zeros_like(x[:, :1])], axis=1)

    def next_mask_of(mask):
        return tf.concat([mask[:, :-1] * mask[:, 1:], tf.zeros_like(mask[:, :1])], axis=1)

    def build(x, y, n):
        if layout == "next_onehot":
            return x, tf.one_hot(next_of(x), vocab_size)
        mask = mask_of(n)
        if layout == "lm_named_masked":
            lm = tf.one_hot(next_of(x), vocab_size)
            return {"tokens": x}, {"lm": lm}, {"lm": next_mask_of(mask)}
        return (
            x,
            {"recon": tf.one_hot(x, vocab_size), "label": y},
            {"recon": mask, "label": tf.cast(y >= 0, tf.float32)},
        )

    dataset = (
        tf.data.Dataset.from_tensor_slices((ids, labels, lengths))
        .shuffle(ids.shape[0], seed=0)
        .batch(shape[0])
        .map(build, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return Pipeline(iter(dataset), None, lambda: None)


def _check(batch, store, layout: str, rows=None) -> None:
    """The batch against the store (first and last rows; ``rows`` None: found by their ids)."""
    assert_batch_matches_store(
        store, batch, rows, split=SPLIT, layout=BatchLayout(**LAYOUTS[layout]), positions=(0, -1)
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_layout_keras_path(
    benchmark, train_store, shape, layout, pipeline, rounds, arrays, pipeline_results
):
    benchmark.group = f"layout via Keras PyDataset path {_name(shape)} {layout}"
    benchmark.extra_info["layout"] = repr(LAYOUTS[layout])
    padding = train_store.padding
    if pipeline == "tf.data":
        running = _tf_data(arrays, shape, layout, padding)
    else:
        seq = OneHotSequence(
            train_store,
            SPLIT,
            shape[0],
            shuffle=True,
            seed=0,
            workers=int(pipeline[-1]),
            max_queue_size=MAX_QUEUE_SIZE,
            memory=MemoryOptions(memory_budget=MEMORY_BUDGET),
            **LAYOUTS[layout],
        )
        running = _keras_path(seq)
    time_pipeline(
        benchmark,
        running,
        pipeline_results,
        pipeline,
        rounds,
        lambda batch, rows: _check(batch, train_store, layout, rows),
    )
