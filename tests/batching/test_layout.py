"""Batch layouts of OneHotSequence (textvae.batching.layout): every kind against the slow
references of textvae.testing, masks against the ids, zero-copy and recycling for every layout,
bad layouts, and fit's epochs without a callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from textvae.batching import MemoryOptions, OneHotSequence
from textvae.batching.layout import next_token_mask, padding_mask
from textvae.data import StoreSpec
from textvae.data.store import TokenStore
from textvae.errors import InvalidArgumentError, StoreMismatchError
from textvae.testing import (
    assert_batch_matches_store,
    mask_reference,
    next_mask_reference,
)
from textvae.training.callbacks import EpochSync

PAD = 0


@pytest.fixture
def post_store(tmp_path: Path, corpus_dir: Path) -> TokenStore:
    """``small_store``'s corpus with padding and truncation at the end ("post")."""
    from textvae.data import build_store
    from textvae.data.discover import open_corpus

    return build_store(
        tmp_path / "post.zarr",
        open_corpus(corpus_dir),
        spec=StoreSpec(vocab_size=12, max_len=16, chunk_rows=8, padding="post", truncating="post"),
    )


LAYOUTS = {
    "lm-bare": {"outputs": "next_onehot"},
    "lm-sparse-masked": {"outputs": "next_sparse", "sample_weight": "mask"},
    "named-multi-masked": {
        "inputs": "tokens",
        "outputs": {"lm": "next_onehot", "recon": "onehot", "label": "classes"},
        "sample_weight": "mask",
    },
    "mask-input": {
        "inputs": {"tokens": "ids", "padding_mask": "mask"},
        "outputs": {"sentiment": "binary", "ids": "sparse"},
    },
    "legacy-masked": {"targets": "sparse", "sample_weight": "mask"},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_layouts_match_references(request, layout, padding):
    store = request.getfixturevalue("small_store" if padding == "pre" else "post_store")
    assert store.padding == padding
    assert (store.lengths("train") > store.max_len).any(), "some rows must be truncated"
    seq = OneHotSequence(store, "train", 5, shuffle=True, seed=2, **LAYOUTS[layout])
    for i in range(len(seq)):
        assert_batch_matches_store(seq, seq[i], seq.batch_rows(i))


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_mask_is_where_the_ids_are_real_tokens(request, padding):
    """Independently of the lengths: a stored review never holds the pad id (0) in its
    tokens, so the mask is exactly ``ids != 0``; the next-token mask is that at t and t + 1."""
    store = request.getfixturevalue("small_store" if padding == "pre" else "post_store")
    seq = OneHotSequence(
        store, "train", 8, outputs={"a": "sparse", "b": "next_sparse"}, sample_weight="mask"
    )
    for i in range(len(seq)):
        ids, _, weights = seq[i]
        real = (ids != PAD).astype(np.float32)
        np.testing.assert_array_equal(weights["a"], real)
        np.testing.assert_array_equal(weights["b"][:, :-1], real[:, :-1] * real[:, 1:])
        assert not weights["b"][:, -1].any()


@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
    st.integers(1, 30),
    st.sampled_from(["pre", "post"]),
)
def test_padding_mask_against_reference(lengths, max_len, padding):
    mask = padding_mask(np.array(lengths, dtype=np.int32), max_len, padding)
    reference = mask_reference(lengths, max_len, padding)
    np.testing.assert_array_equal(mask, reference)
    np.testing.assert_array_equal(next_token_mask(mask), next_mask_reference(reference))


def test_a_layout_pickles(small_store):
    import pickle

    seq = OneHotSequence(small_store, "train", 4, **LAYOUTS["named-multi-masked"])
    clone = pickle.loads(pickle.dumps(seq))
    assert_batch_matches_store(clone, clone[1], clone.batch_rows(1))


# -- zero copy and recycling ---------------------------------------------------------------------

ONEHOT_LAYOUT = {
    "inputs": "tokens",
    "outputs": {"lm": "next_onehot", "recon": "onehot", "label": "binary"},
    "sample_weight": "mask",
}


def test_next_onehot_recycled_only_when_released(small_store):
    """next-token one-hot targets come from the same pool: a held batch is never recycled
    under its holder, a released one is reused (no new allocation)."""
    seq = OneHotSequence(
        small_store, "train", 4, outputs="next_onehot", memory=MemoryOptions(pool_size=2)
    )
    held = seq[0][1]
    snapshot = held.copy()
    held_ptr = held.ctypes.data
    for i in range(1, 6):  # pool of 2, one held: every batch after reuses the other buffer
        batch = seq[i]
        y = batch[1]
        assert y.ctypes.data != held_ptr and y.ctypes.data % 64 == 0
        assert_batch_matches_store(seq, batch, seq.batch_rows(i))
        del y, batch
    np.testing.assert_array_equal(held, snapshot)
    assert seq._pool.allocations == 2, "released buffers must be reused"
    del held
    assert seq[6][1].ctypes.data in {held_ptr, *(b.ctypes.data for b, _ in seq._pool._buffers)}
    assert seq._pool.allocations == 2


def test_two_onehot_outputs_share_one_pool(small_store, rng):
    seq = OneHotSequence(small_store, "train", 6, **ONEHOT_LAYOUT)
    assert seq._in_flight() == seq.max_queue_size + 3
    order = [len(seq) - 1, 0, len(seq) - 1, 3, *rng.integers(0, len(seq), 12)]
    for i in order:
        assert_batch_matches_store(seq, seq[int(i)], seq.batch_rows(int(i)))
    assert seq._pool.capacity == 2 * seq._in_flight()  # two one-hot arrays a batch
    assert seq._pool.allocations <= 2, "each released batch's two buffers are reused"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_keras_path_zero_copy_for_every_onehot_output(small_store, workers):
    """Through Keras' PyDataset adapter (what fit consumes), holding every delivered batch:
    each is exact, and each pooled buffer shows through exactly one delivered one-hot tensor
    (TensorFlow wraps our memory; no buffer lies under two held batches)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    seq = OneHotSequence(
        small_store, "train", 4, seed=5, workers=workers, max_queue_size=2, **ONEHOT_LAYOUT
    )
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    adapter = PyDatasetAdapter(seq, shuffle=False)
    dataset = adapter.get_tf_dataset()
    adapter.on_epoch_begin()
    held = list(dataset)
    pool = [buf for buf, _ in seq._pool._buffers]
    adapter.on_epoch_end()
    assert len(held) == len(seq)
    for i, batch in enumerate(held):
        assert_batch_matches_store(seq, batch, rows[i])
    assert 0 < len(pool) <= 2 * (seq.max_queue_size + workers + 2)
    for buf in pool:
        buf[0, 0, 0] = 7
    marked = [float(out[name][0, 0, 0]) == 7 for _, out, _ in held for name in ("lm", "recon")]
    assert sum(marked) == len(pool)


# -- bad layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": "next"}, r"`outputs` must be one of 'onehot', 'sparse', 'next_onehot'"),
        ({"outputs": {"lm": "bogus"}}, r"`outputs\['lm'\]` must be one of"),
        ({"outputs": {3: "onehot"}}, r"`outputs` names must be non-empty strings"),
        ({"outputs": {}}, r"`outputs` must be a non-empty dict"),
        ({"outputs": ["onehot"]}, r"`outputs` must be a non-empty dict"),
        ({"inputs": 3}, r"`inputs` must be None \(the bare ids array\), an input name"),
        ({"inputs": ""}, r"`inputs` names must be non-empty strings"),
        ({"inputs": {"x": "labels"}}, r"`inputs\['x'\]` must be one of 'ids', 'mask'"),
        ({"inputs": {None: "ids"}}, r"`inputs` names must be non-empty strings"),
        ({"sample_weight": "weights"}, r"`sample_weight` must be one of 'mask', None"),
        ({"outputs": "onehot", "targets": "sparse"}, r"pass `outputs` or `targets`, not both"),
        (
            {"outputs": "onehot", "sentiment_name": None},
            r"pass `outputs` or `sentiment_name`, not both",
        ),
        ({"reconstruction_name": 5}, r"`outputs` names must be non-empty strings"),
        ({"reconstruction_name": "y", "sentiment_name": "y"}, r"must differ"),
    ],
)
def test_bad_layouts_are_refused(small_store, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        OneHotSequence(small_store, **kwargs)


def _id_store(path, **kwargs) -> TokenStore:
    from textvae.data import build_store_from_ids

    ids = np.random.default_rng(5).integers(3, 12, size=(24, 10))
    return build_store_from_ids(
        path, {"train": ids}, spec=StoreSpec(vocab_size=12, max_len=16), **kwargs
    )


def test_labels_of_a_store_without_labels_are_refused(tmp_path):
    store = _id_store(tmp_path / "nolabels.zarr")
    assert not store.has_labels
    for outputs in ({"lm": "next_onehot", "y": "classes"}, "binary"):
        with pytest.raises(StoreMismatchError, match="ask for labels, but the store"):
            OneHotSequence(store, outputs=outputs)
    with pytest.raises(StoreMismatchError, match="ask for labels"):
        OneHotSequence(store)  # the default layout has a sentiment output
    seq = OneHotSequence(store, outputs="next_sparse", sample_weight="mask")
    ids, targets, _ = seq[0]  # layouts without labels still work
    np.testing.assert_array_equal(targets[:, :-1], ids[:, 1:])


def test_binary_of_a_multiclass_store_is_refused(tmp_path):
    labels = np.arange(24) % 5
    store = _id_store(tmp_path / "classes.zarr", labels={"train": labels}, num_classes=5)
    with pytest.raises(StoreMismatchError, match="num_classes=5: use 'classes'"):
        OneHotSequence(store, outputs={"y": "binary"})
    seq = OneHotSequence(store, outputs="classes")
    np.testing.assert_array_equal(seq[0][1], labels[seq.batch_rows(0)])


# -- memory budget and default queue ---------------------------------------------------------------

BATCH_BYTES = 8 * 16 * 12 * 4  # (8, 16, 12) float32


# -- fit ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_fit_a_language_model_and_classifier(small_store):
    """A model with a named input, next-token one-hot targets and class labels, trained on the
    masked batches: Keras takes the layout as it is."""
    keras.utils.set_random_seed(0)
    seq = OneHotSequence(
        small_store,
        "train",
        8,
        inputs="tokens",
        outputs={"lm": "next_onehot", "label": "classes"},
        sample_weight="mask",
        workers=2,
    )
    tokens = keras.Input((small_store.max_len,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(small_store.vocab_size, 8)(tokens)
    lm = keras.layers.Dense(small_store.vocab_size, activation="softmax", name="lm")(h)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    label = keras.layers.Dense(2, activation="softmax", name="label")(pooled)
    model = keras.Model({"tokens": tokens}, {"lm": lm, "label": label})
    model.compile(
        "adam",
        loss={"lm": "categorical_crossentropy", "label": "sparse_categorical_crossentropy"},
    )
    history = model.fit(seq, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


class _Tap(keras.layers.Layer):
    """Records the concrete ids of every batch the model is called on (eagerly)."""

    def __init__(self, seen: list, **kwargs):
        super().__init__(**kwargs)
        self.record = seen.append  # not the list: Keras would track (copy) a list attribute

    def call(self, x):
        try:
            self.record(keras.ops.convert_to_numpy(x))
        except Exception:  # a symbolic tensor (the model being built): no data
            pass
        return x


def fit_epoch_rows(
    store: TokenStore | str,
    *,
    epochs: int,
    workers: int = 1,
    initial_epoch: int = 0,
    sync: bool = False,
) -> tuple[list[list[int]], list[list[int]]]:
    """``(rows the model trained on in each fit epoch, what the sequence's plan says for those
    epochs)``, with a real ``model.fit`` on the sequence (no EpochSync unless ``sync``)."""
    if not isinstance(store, TokenStore):
        store = TokenStore.open(store)
    all_ids = store.read("train", slice(None)).astype(np.int32)
    row_of = {row.tobytes(): i for i, row in enumerate(all_ids)}
    assert len(row_of) == len(all_ids), "the test needs distinct rows"
    seq = OneHotSequence(store, "train", 8, seed=3, outputs={"s": "binary"}, workers=workers)
    seq.set_epoch(initial_epoch)
    seen: list = []
    trained: list[list[int]] = []

    class Cut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            trained.append([row_of[r.tobytes()] for b in seen for r in b.astype(np.int32)])
            seen.clear()

    ids = keras.Input((store.max_len,), dtype="int32")
    h = keras.layers.Embedding(store.vocab_size, 4)(_Tap(seen)(ids))
    out = keras.layers.Dense(1, name="s")(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(ids, {"s": out})
    model.compile("sgd", loss={"s": "mse"}, run_eagerly=True)
    callbacks = [EpochSync(seq), Cut()] if sync else [Cut()]
    model.fit(
        seq,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    planned = [seq.epoch_rows(e).tolist() for e in range(initial_epoch, epochs)]
    return trained, planned


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_fit_serves_epochs_in_order_without_a_callback(small_store, workers):
    trained, planned = fit_epoch_rows(small_store, epochs=3, workers=workers)
    assert trained == planned
    assert len({tuple(t) for t in trained}) == 3, "each epoch its own order"


@pytest.mark.timeout(120)
def test_fit_resumed_at_initial_epoch(small_store):
    for sync in (False, True):  # set_epoch before fit, or EpochSync: both exact
        trained, planned = fit_epoch_rows(small_store, epochs=4, initial_epoch=2, sync=sync)
        assert trained == planned and len(trained) == 2


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fit_serves_epochs_in_order_on_jax(small_store):
    """JAX builds the model by beginning an epoch, taking one batch and ending it: that peek
    must not count as an epoch."""
    pytest.importorskip("jax")
    code = (
        "import json, sys; from test_layout import fit_epoch_rows; "
        "print(json.dumps(fit_epoch_rows(sys.argv[1], epochs=3)))"
    )
    here = Path(__file__).parent
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": os.pathsep.join([str(here.parents[1]), str(here)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, small_store.path],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trained, planned = json.loads(done.stdout.strip().splitlines()[-1])
    assert trained == planned
