"""OneHotSequence's target window: token outputs (and their weights) for the last W positions
of each row only, inputs whole; every layout against the full-row batches cut to the window,
the buffers and memory budget sized for W, bad windows refused, resume and Keras' path exact."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from test_layout import LAYOUTS as LAYOUT_CASES

from textvae.batching import MemoryOptions, OneHotSequence, SamplingOptions, ShardOptions
from textvae.batching.layout import TOKEN_KINDS, BatchLayout
from textvae.config import TrainConfig
from textvae.data.store import TokenStore
from textvae.errors import InvalidArgumentError, MemoryBudgetWarning
from textvae.testing import assert_batch_matches_store, make_store, onehot_reference

MAX_LEN = 16
WINDOW = 5

#: The default layout's forms, and test_layout's cases (its legacy spelling aside).
LAYOUTS = {
    "vae-onehot": {},
    "vae-sparse": {"targets": "sparse"},
    "vae-onehot-masked": {"sample_weight": "mask"},
    **{name: kwargs for name, kwargs in LAYOUT_CASES.items() if name != "legacy-masked"},
}
OPTIONS = {
    "in-order": {"shuffle": False},
    "shuffled": {"shuffle": True, "seed": 3, "sampling": SamplingOptions(window_chunks=2)},
    "rows-sharded": {
        "shuffle": True,
        "seed": 4,
        "sampling": SamplingOptions(rows=24),
        "shards": ShardOptions(1, 2),
        "drop_remainder": True,
    },
    "row-subset": {"shuffle": True, "sampling": SamplingOptions(row_subset=[1, 5, 9, 30, 31])},
}


@pytest.fixture
def post_store(tmp_path: Path) -> TokenStore:
    return make_store(tmp_path / "post.zarr", rows=37, max_len=MAX_LEN, padding="post", seed=1)


def _cut(layout: BatchLayout, batch: tuple, window: int) -> tuple:
    """A whole-row batch with its token outputs and their weights cut to the last ``window``
    columns: what a windowed sequence must serve."""

    def cut(kind: str, array: np.ndarray) -> np.ndarray:
        return array[:, -window:] if kind in TOKEN_KINDS else array

    x, y, *weights = batch
    if isinstance(layout.outputs, str):
        return (x, cut(layout.outputs, y), *(cut(layout.outputs, w) for w in weights))
    y = {name: cut(kind, y[name]) for name, kind in layout.outputs.items()}
    weights = [{n: cut(k, w[n]) for n, k in layout.outputs.items()} for w in weights]
    return (x, y, *weights)


def _assert_same(got, want, where: str = "batch") -> None:
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    else:
        assert isinstance(got, np.ndarray), where
        assert got.dtype == want.dtype and got.shape == want.shape, (where, got.shape, want.shape)
        np.testing.assert_array_equal(got, want, err_msg=where)


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_window_is_the_whole_row_targets_cut(request, padding, layout, options):
    store = request.getfixturevalue("small_store" if padding == "pre" else "post_store")
    assert store.padding == padding and store.max_len == MAX_LEN
    kwargs = {**LAYOUTS[layout], **OPTIONS[options]}
    whole = OneHotSequence(store, "train", 4, **kwargs)
    seq = OneHotSequence(store, "train", 4, target_window=WINDOW, **kwargs)
    assert seq.target_window == seq.layout.target_window == WINDOW
    assert len(seq) == len(whole) > 0
    for epoch in (0, 1):
        whole.set_epoch(epoch)
        seq.set_epoch(epoch)
        for i in range(len(seq)):
            np.testing.assert_array_equal(seq.batch_rows(i), whole.batch_rows(i))
            batch = seq[i]
            _assert_same(batch, _cut(whole.layout, whole[i], WINDOW))
            assert_batch_matches_store(seq, batch, seq.batch_rows(i))


@pytest.mark.parametrize("targets", ["onehot", "sparse"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
@pytest.mark.parametrize("window", [1, WINDOW, MAX_LEN - 1])
def test_default_layout_every_dtype(small_store, targets, dtype, window):
    seq = OneHotSequence(
        small_store, "train", 5, targets=targets, dtype=dtype, target_window=window
    )
    for i in range(len(seq)):
        rows = seq.batch_rows(i)
        ids, outputs = seq[i]
        assert ids.shape == (len(rows), MAX_LEN), "inputs stay whole rows"
        recon = outputs["reconstruction"]
        if targets == "onehot":
            assert recon.shape == (len(rows), window, small_store.vocab_size)
            assert recon.dtype == np.dtype(dtype) and recon.ctypes.data % 64 == 0
            want = onehot_reference(
                ids[:, -window:].astype(np.int64), small_store.vocab_size, dtype
            )
        else:
            assert recon.shape == (len(rows), window) and recon.flags.c_contiguous
            want = ids[:, -window:]
        np.testing.assert_array_equal(recon, want)
        assert_batch_matches_store(seq, (ids, outputs), rows)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_window_of_max_len_is_no_window(small_store, layout):
    whole = OneHotSequence(small_store, "train", 6, seed=1, **LAYOUTS[layout])
    seq = OneHotSequence(small_store, "train", 6, seed=1, target_window=MAX_LEN, **LAYOUTS[layout])
    for i in range(len(seq)):
        _assert_same(seq[i], whole[i])


def test_recycled_window_buffers_exact_in_any_order(small_store, rng):
    """The pool's buffers and their records are (rows, W[, vocab]): cleared cell by cell
    whatever order batches come in, each batch equals the reference."""
    seq = OneHotSequence(
        small_store,
        "train",
        6,
        outputs={"lm": "next_onehot", "recon": "onehot"},
        target_window=WINDOW,
        memory=MemoryOptions(pool_size=2),
    )
    order = [len(seq) - 1, 0, len(seq) - 1, 3, *rng.integers(0, len(seq), 20)]
    for i in order:
        batch = seq[int(i)]
        assert_batch_matches_store(seq, batch, seq.batch_rows(int(i)))
        del batch
    assert seq._pool.allocations <= 2, "released buffers must be reused"
    for buf, record in seq._pool._buffers:
        assert buf.shape == (6, WINDOW, small_store.vocab_size) and record.shape == (6, WINDOW)


# -- bad windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [0, -1, 2.5, True, "3", np.float64(4.0)])
def test_bad_windows_are_refused(small_store, window):
    with pytest.raises(
        InvalidArgumentError,
        match=r"`target_window` must be an integer in \[1, max_len\] or None\. "
        + re.escape(f"Received: target_window={window!r}"),
    ):
        OneHotSequence(small_store, target_window=window)


def test_window_beyond_the_store_is_refused_when_it_opens(small_store):
    assert BatchLayout(outputs="onehot", target_window=17).target_window == 17  # no store yet
    with pytest.raises(
        InvalidArgumentError,
        match=r"`target_window` must be an integer in \[1, max_len\] or None \(max_len is 16\)\. "
        r"Received: target_window=17",
    ):
        OneHotSequence(small_store.path, target_window=17)
    seq = OneHotSequence(small_store, target_window=np.int64(16))
    assert seq.target_window == 16 and type(seq.target_window) is int


def test_window_without_token_outputs_is_refused(small_store):
    with pytest.raises(InvalidArgumentError, match=r"outputs \{'label': 'binary'\} have none"):
        OneHotSequence(
            small_store, reconstruction_name=None, sentiment_name="label", target_window=4
        )
    with pytest.raises(InvalidArgumentError, match="Received: target_window=4"):
        OneHotSequence(small_store, outputs="classes", target_window=4)


# -- memory -----------------------------------------------------------------------------------

BATCH_BYTES = 8 * MAX_LEN * 12 * 4  # (8, 16, 12) float32


def test_buffers_and_the_memory_budget_shrink_by_the_window(small_store):
    """One-hot buffers hold W / max_len of a whole row's bytes, and the budget counts that: a
    budget that fits 6 whole batches fits 12 half-row ones (a longer default queue)."""
    budget = MemoryOptions(memory_budget=6 * BATCH_BYTES)
    whole = OneHotSequence(small_store, "train", 8, memory=budget)
    half = OneHotSequence(small_store, "train", 8, memory=budget, target_window=MAX_LEN // 2)
    assert whole.max_queue_size == 6 - 1 - 2
    assert half.max_queue_size == 12 - 1 - 2
    whole_batch, half_batch = whole[0][1]["reconstruction"], half[0][1]["reconstruction"]
    assert half_batch.nbytes * MAX_LEN == whole_batch.nbytes * (MAX_LEN // 2)
    ((whole_buf, _),), ((half_buf, _),) = whole._pool._buffers, half._pool._buffers
    assert half_buf.nbytes * 2 == whole_buf.nbytes == BATCH_BYTES
    assert half_buf.base.nbytes < whole_buf.base.nbytes, "the allocation itself is smaller"


def test_the_budget_warning_states_the_window_shape(small_store):
    with pytest.warns(MemoryBudgetWarning, match=r"shape \(8, 4, 12\) float32") as record:
        OneHotSequence(
            small_store,
            "train",
            8,
            target_window=4,
            max_queue_size=10,
            memory=MemoryOptions(memory_budget=BATCH_BYTES),
        )
    assert "target_window" in str(record[0].message), "a window is one of the fixes named"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 13 batches of a quarter row fit 13 / 4 whole ones
        OneHotSequence(
            small_store,
            "train",
            8,
            target_window=4,
            max_queue_size=10,
            memory=MemoryOptions(memory_budget=13 * BATCH_BYTES // 4),
        )


# -- resume, pickling, Keras' path, the training config -------------------------------------------


@pytest.mark.parametrize("first", [0, 2, 4])
def test_from_batch_and_pickle_keep_the_window(small_store, first):
    seq = OneHotSequence(small_store, "train", 8, seed=5, target_window=WINDOW)
    seq.set_epoch(2)
    rest = seq.from_batch(first)
    rest.set_epoch(2)
    clone = pickle.loads(pickle.dumps(rest))
    assert rest.target_window == clone.target_window == WINDOW
    for i in range(len(rest)):
        want = seq[first + i]
        _assert_same(rest[i], want)
        _assert_same(clone[i], want)
    assert "target_window=5" in repr(seq)


@pytest.mark.timeout(120)
def test_keras_path_delivers_exact_window_batches(small_store):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    seq = OneHotSequence(
        small_store, "train", 4, seed=5, workers=2, max_queue_size=2, target_window=WINDOW
    )
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    adapter = PyDatasetAdapter(seq, shuffle=False)
    dataset = adapter.get_tf_dataset()
    adapter.on_epoch_begin()
    held = list(dataset)
    adapter.on_epoch_end()
    assert len(held) == len(seq)
    for batch, r in zip(held, rows, strict=True):
        assert tuple(batch[1]["reconstruction"].shape)[1:] == (WINDOW, small_store.vocab_size)
        assert_batch_matches_store(seq, batch, r)


@pytest.mark.timeout(120)
def test_fit_a_model_that_predicts_the_window(small_store):
    """A model that reads whole rows and predicts only their last W positions trains on the
    windowed targets as they are."""
    keras.utils.set_random_seed(0)
    seq = OneHotSequence(small_store, "train", 8, target_window=WINDOW, sample_weight="mask")
    ids = keras.Input((MAX_LEN,), dtype="int32")
    h = keras.layers.Embedding(small_store.vocab_size, 8)(ids)
    tail = keras.layers.Cropping1D((MAX_LEN - WINDOW, 0))(h)
    recon = keras.layers.Dense(small_store.vocab_size, activation="softmax", name="reconstruction")
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    senti = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(pooled)
    model = keras.Model(ids, {"reconstruction": recon(tail), "sentiment": senti})
    model.compile(
        "adam",
        loss={"reconstruction": "categorical_crossentropy", "sentiment": "binary_crossentropy"},
    )
    history = model.fit(seq, epochs=2, verbose=0, shuffle=False)
    assert all(np.isfinite(history.history["loss"]))


def test_train_config_passes_the_window_to_the_sequences(small_store):
    from textvae.training.run_data import _sequence

    config = TrainConfig(vocab_size=12, max_len=MAX_LEN, batch_size=4).replace(target_window=WINDOW)
    assert TrainConfig.from_dict(config.to_dict()) == config
    seq = _sequence(config, small_store, np.arange(small_store.num_rows("train")))
    assert seq.target_window == WINDOW
    assert_batch_matches_store(seq, seq[0], seq.batch_rows(0))
    whole = _sequence(config.replace(target_window=None), small_store, np.arange(8))
    assert whole.target_window is None
    for window in (0, MAX_LEN + 1, 2.5):
        with pytest.raises(InvalidArgumentError, match=r"`target_window` must be"):
            TrainConfig(max_len=MAX_LEN).replace(target_window=window)
