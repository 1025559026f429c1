"""OneHotSequence beside Grain, the loader a Keras 3 user on JAX would pick, on JAX's path.

Every pipeline goes through Keras' own adapter for it and its ``get_jax_iterator()``, which is
what ``model.fit`` consumes on the JAX backend (the iterator needs jax installed, not the JAX
backend: this runs in the TensorFlow test process):

- ``textvae-w1`` / ``textvae-w2``: ``OneHotSequence`` (1 / 2 thread workers) through
  ``PyDatasetAdapter``;
- ``grain``: a Grain ``MapDataset`` over the same ids (``range(N).shuffle(seed)``, rows and
  labels looked up in a ``map``, ``batch``, then the one-hot expansion in a ``map`` with
  NumPy's ``np.zeros`` + ``np.put_along_axis``), read by 2 threads with 2 batches prefetched
  (``to_iter_dataset(ReadOptions(num_threads=2, prefetch_buffer_size=2))``), through Keras'
  ``GrainDatasetAdapter``;
- ``tf.data``: the ``tf.data`` + ``tf.one_hot`` pipeline of ``test_bench_sequence.py`` through
  ``TFDatasetAdapter`` (tensors converted to NumPy, as ``fit`` on JAX does).

One round is one batch pulled and dropped; every pipeline is warmed up first. Grain is skipped
where it is not installed (``pip install grain``). ``--full``: (64, 300, 20000) from IMDB.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_bench_sequence import (
    MAX_QUEUE_SIZE,
    SPLIT,
    Pipeline,
    _name,
    _sequence,
    _tf_data,
    check_batch,
    time_pipeline,
)

TARGETS = ["float32", "uint8"]
PIPELINES = ["textvae-w1", "textvae-w2", "grain", "tf.data"]


@pytest.fixture(scope="module")
def shape(train_store, full) -> tuple[int, int, int]:
    return (64 if full else 8, train_store.max_len, train_store.vocab_size)


@pytest.fixture(scope="module")
def all_ids(train_store) -> np.ndarray:
    return train_store.read(SPLIT, slice(None)).astype(np.int32)


@pytest.fixture(scope="module")
def all_labels(train_store) -> np.ndarray:
    return train_store.labels(SPLIT).astype(np.float32)


def _grain(all_ids, all_labels, shape, target):
    """The Grain pipeline a JAX user writes: shuffled rows, batched, one-hot in a ``map``."""
    import grain

    vocab_size = shape[2]
    labels = all_labels.reshape(-1, 1)

    def onehot(batch):
        ids, y = batch
        out = np.zeros((*ids.shape, vocab_size), dtype=target)
        np.put_along_axis(out, ids[..., None], 1, axis=-1)
        return ids, {"reconstruction": out, "sentiment": y}

    return (
        grain.MapDataset.range(all_ids.shape[0])
        .shuffle(seed=0)
        .map(lambda i: (all_ids[i], labels[i]))
        .batch(shape[0])
        .map(onehot)
        .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    )


def _jax_path(pipeline, train_store, shape, target, all_ids, all_labels) -> Pipeline:
    """``get_jax_iterator()`` of Keras' adapter for ``pipeline``: what fit on JAX consumes."""
    if pipeline.startswith("textvae"):
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        seq = _sequence(
            train_store, shape, target, workers=int(pipeline[-1]), max_queue_size=MAX_QUEUE_SIZE
        )
        adapter = PyDatasetAdapter(seq, shuffle=False)
        adapter.on_epoch_begin()

        def close():
            adapter.on_epoch_end()
            adapter.enqueuer = None
            adapter.py_dataset = None

        return Pipeline(iter(adapter.get_jax_iterator()), seq.batch_rows, close)
    if pipeline == "grain":
        from keras.src.trainers.data_adapters.grain_dataset_adapter import GrainDatasetAdapter

        adapter = GrainDatasetAdapter(_grain(all_ids, all_labels, shape, target))
        return Pipeline(iter(adapter.get_jax_iterator()), None, lambda: None)
    # TFDatasetAdapter.get_jax_iterator's own loop: every tensor through convert_to_numpy.
    from keras import tree
    from keras.src.backend.tensorflow.core import convert_to_numpy

    tensors = _tf_data(all_ids, all_labels, shape, target).iterator
    return Pipeline((tree.map_structure(convert_to_numpy, b) for b in tensors), None, lambda: None)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_jax_path(
    benchmark, train_store, shape, target, pipeline, all_ids, all_labels, full, pipeline_results
):
    if pipeline == "grain":
        pytest.importorskip("grain")
    pytest.importorskip("jax")
    benchmark.group = f"batches via Keras' JAX iterator {_name(shape)} {target}"
    running = _jax_path(pipeline, train_store, shape, target, all_ids, all_labels)
    time_pipeline(
        benchmark,
        running,
        pipeline_results,
        pipeline,
        (10, 24) if full else (2, 5),
        lambda batch, rows: check_batch(batch, train_store, target, rows=rows),
        rows=shape[0],
    )
