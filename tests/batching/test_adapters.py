"""textvae.batching.adapters: a Sequence's batches in a tf.data pipeline, without a copy.

(PyTorch's side, ``batch_to_torch`` and ``as_torch_dataloader``, runs under the torch backend in
backend_worker.py, which imports torch anyway.)
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from textvae.batching import MemoryOptions, OneHotSequence
from textvae.batching.adapters import as_tf_dataset, as_torch_dataloader, batch_spec
from textvae.errors import InvalidArgumentError
from textvae.kernels import aligned_empty
from textvae.testing import assert_batch_matches_store


@pytest.mark.parametrize("workers", [1, 2])
def test_tf_dataset_serves_the_epoch_without_copies(small_store, workers):
    seq = OneHotSequence(small_store, "train", 4, seed=3, workers=workers, max_queue_size=2)
    seq.set_epoch(2)
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    dataset = seq.as_tf_dataset()
    assert seq.epoch == 2, "building the dataset must not advance the epoch"
    held = list(dataset)  # one pass, every tensor held: nothing may be recycled under them
    assert len(held) == len(rows)
    for (ids, outputs), r in zip(held, rows, strict=True):
        assert_batch_matches_store(seq, (ids, outputs), r)
        assert outputs["reconstruction"].dtype == tf.float32 and ids.dtype == tf.int32
    assert seq.epoch == 3, "a full pass advances the epoch, as fit does"
    assert seq._pool is None, "the pool is let go at the epoch's end"


def test_tf_dataset_hands_over_the_buffers(small_store):
    seq = OneHotSequence(small_store, "train", 4, seed=3, memory=MemoryOptions(pool_size=16))
    rows = [seq.batch_rows(i) for i in range(5)]
    batches = iter(seq.as_tf_dataset())
    held = [next(batches) for _ in range(5)]  # mid-epoch: the pool is still there
    for batch, r in zip(held, rows, strict=True):
        assert_batch_matches_store(seq, batch, r)
    # tf.data may have pulled a batch ahead: the pool holds the 5 held batches' buffers and
    # maybe more. A distinct mark in each buffer must show through every held tensor (zero
    # copy), all marks different (no two held batches over one buffer).
    pool = [buf for buf, _ in seq._pool._buffers]
    for k, buf in enumerate(pool):
        buf[0, 0, 0] = 7 + k
    marks = [float(out["reconstruction"][0, 0, 0]) for _, out in held]
    assert all(m >= 7 for m in marks) and len(set(marks)) == len(held)
    del batches


def test_tf_dataset_next_pass_is_the_next_epoch(small_store):
    seq = OneHotSequence(small_store, "train", 8, seed=1, targets="sparse")
    dataset = seq.as_tf_dataset()
    first = np.concatenate([ids.numpy()[:, -1] for ids, _ in dataset])
    second_rows = seq.epoch_rows(1)
    second = np.concatenate([ids.numpy()[:, -1] for ids, _ in dataset])
    np.testing.assert_array_equal(second, small_store.read("train", second_rows)[:, -1])
    assert seq.epoch == 2 and first.size == second.size


def test_tf_dataset_trains_a_model(small_store):
    import keras

    keras.utils.set_random_seed(0)
    seq = OneHotSequence(small_store, "train", 8, reconstruction_name=None, sentiment_name="label")
    ids = keras.Input((small_store.max_len,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(12, 8)(ids))
    out = keras.layers.Dense(1, activation="sigmoid", name="label")(h)
    model = keras.Model(ids, {"label": out})
    model.compile(keras.optimizers.Adam(0.05), loss={"label": "binary_crossentropy"})
    history = model.fit(seq.as_tf_dataset().prefetch(1), epochs=3, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


class _Nested:
    """A stand-in for any batch layout: dict inputs, a bare output, weights, lists, uint8."""

    workers, max_queue_size = 1, 1

    def __init__(self, n_batches: int = 3) -> None:
        self.n = n_batches
        self.epochs_ended = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rows = 4 if i < self.n - 1 else 1  # a short last batch
        onehot = aligned_empty((rows, 5, 6), np.uint8)
        onehot[...] = i
        x = {"ids": np.full((rows, 5), i, np.int32), "extra": [np.ones((rows, 2), np.float16)]}
        return x, onehot, np.full((rows,), i, np.float32)

    def on_epoch_end(self) -> None:
        self.epochs_ended += 1


def test_tf_dataset_any_nested_layout():
    seq = _Nested()
    spec = batch_spec(seq[0])
    assert spec[0]["ids"] == tf.TensorSpec((None, 5), tf.int32)
    assert spec[0]["extra"] == (tf.TensorSpec((None, 2), tf.float16),)
    assert spec[1] == tf.TensorSpec((None, 5, 6), tf.uint8)
    assert spec[2] == tf.TensorSpec((None,), tf.float32)
    batches = list(as_tf_dataset(seq))
    assert len(batches) == 3 and seq.epochs_ended == 1
    for i, (x, y, w) in enumerate(batches):
        want = seq[i]
        np.testing.assert_array_equal(x["ids"].numpy(), want[0]["ids"])
        np.testing.assert_array_equal(x["extra"][0].numpy(), want[0]["extra"][0])
        np.testing.assert_array_equal(y.numpy(), want[1])
        np.testing.assert_array_equal(w.numpy(), want[2])


@pytest.mark.parametrize(
    ("batch", "where"),
    [
        ((np.zeros((2, 3)), None), r"batch\[1\]=NoneType"),
        ({"x": np.array(["a", "b"])}, r"batch\['x'\]=ndarray of dtype <U1"),
        ((np.float32(1.0),), r"batch\[0\]=float32"),
    ],
    ids=["none", "strings", "scalar"],
)
def test_batch_spec_names_a_bad_leaf(batch, where):
    with pytest.raises(InvalidArgumentError, match=where):
        batch_spec(batch)


@pytest.mark.parametrize("name", ["batch_size", "shuffle", "collate_fn"])
def test_as_torch_dataloader_refuses_what_the_sequence_does(small_store, name):
    # Checked before torch is imported: runs without torch.
    seq = OneHotSequence(small_store, "train", 4)
    with pytest.raises(InvalidArgumentError, match=f"`{name}` is set by as_torch_dataloader"):
        as_torch_dataloader(seq, **{name: 8})


@pytest.mark.parametrize("workers", [1, 2])
def test_numpy_iterator_serves_the_epoch_then_advances(small_store, workers):
    seq = OneHotSequence(small_store, "train", 8, seed=2, workers=workers, max_queue_size=2)
    seq.set_epoch(1)
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    batches = list(seq.as_numpy_iterator())
    assert len(batches) == len(rows) and seq.epoch == 2
    for batch, r in zip(batches, rows, strict=True):
        assert isinstance(batch, tuple) and isinstance(batch[0], np.ndarray)
        assert_batch_matches_store(seq, batch, r)
    first = next(iter(seq.as_numpy_iterator()))  # stopped early: the epoch stays
    np.testing.assert_array_equal(first[0], small_store.read("train", seq.batch_rows(0)))
    assert seq.epoch == 2


def _flip_train_tokens(store) -> None:
    """Flip bytes in every train/tokens chunk file: each read of one fails its checksum."""
    from pathlib import Path

    for path in (Path(store.path) / "train" / "tokens" / "c").rglob("*"):
        if path.is_file():
            data = bytearray(path.read_bytes())
            mid = len(data) // 2
            data[mid - 8 : mid + 8] = bytes(b ^ 0xFF for b in data[mid - 8 : mid + 8])
            path.write_bytes(bytes(data))


@pytest.mark.parametrize("workers", [1, 3])
def test_a_store_error_in_the_batch_threads_is_the_error_itself(small_store, workers):
    from textvae.batching.adapters import as_numpy_iterator
    from textvae.errors import StoreCorruptError, unwrap

    seq = OneHotSequence(small_store, "train", 8, workers=workers)
    _flip_train_tokens(small_store)
    with pytest.raises(StoreCorruptError, match="train/tokens") as info:
        list(as_numpy_iterator(seq))
    assert unwrap(info.value) is info.value


def test_a_store_error_through_tf_data_unwraps(small_store):
    from textvae.errors import StoreCorruptError, unwrap

    dataset = as_tf_dataset(OneHotSequence(small_store, "train", 8, workers=2))
    _flip_train_tokens(small_store)
    with pytest.raises(tf.errors.UnknownError) as info:
        list(dataset)
    found = unwrap(info.value)
    assert type(found) is StoreCorruptError and "train/tokens" in str(found)
    assert "\n" not in str(found)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_store_error_through_a_torch_dataloader_unwraps(small_store, num_workers):
    pytest.importorskip("torch")
    from textvae.errors import StoreCorruptError, unwrap

    loader = as_torch_dataloader(OneHotSequence(small_store, "train", 8), num_workers=num_workers)
    _flip_train_tokens(small_store)
    with pytest.raises(Exception) as info:
        list(loader)
    found = unwrap(info.value)
    assert type(found) is StoreCorruptError and "train/tokens" in str(found)
    assert "Traceback" not in str(found)
