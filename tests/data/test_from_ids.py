"""Stores from users' data (textvae.data.from_ids): ids of any tokenizer, texts with any tokenizer,
no/binary/class labels, any split names, ids beyond uint16, and format-1 stores still read."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import textvae
from textvae.data import (
    StoreSpec,
    TokenStore,
    build_store,
    build_store_from_ids,
    open_corpus,
    verify_store,
)
from textvae.data.format import FORMAT
from textvae.data.from_ids import ID_TOKEN
from textvae.errors import InvalidArgumentError, StoreFormatError
from textvae.kernels import onehot

PADDINGS = ["pre", "post"]


def pad_sequences(rows, max_len, padding, truncating, value=0):
    """Keras' own padding and truncation: the reference every stored row must equal."""
    from keras.utils import pad_sequences as keras_pad

    return keras_pad(
        [list(r) for r in rows],
        maxlen=max_len,
        dtype="int64",
        padding=padding,
        truncating=truncating,
        value=value,
    )


def ragged(rng, n, vocab_size, longest=12):
    return [rng.integers(0, vocab_size, size=int(rng.integers(0, longest + 1))) for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Ids: round trips against keras.utils.pad_sequences


@settings(max_examples=15)
@given(
    lengths=st.lists(st.integers(0, 14), min_size=1, max_size=20),
    max_len=st.integers(1, 9),
    padding=st.sampled_from(PADDINGS),
    truncating=st.sampled_from(PADDINGS),
    pad_id=st.sampled_from([0, 7]),
    seed=st.integers(0, 2**16),
)
def test_ragged_ids_round_trip_as_pad_sequences(
    lengths, max_len, padding, truncating, pad_id, seed
):
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 50, size=n).tolist() for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store_from_ids(
            Path(tmp) / "s.zarr",
            {"train": rows},
            StoreSpec(
                vocab_size=50, max_len=max_len, padding=padding, truncating=truncating, chunk_rows=4
            ),
            pad_id=pad_id,
        )
        np.testing.assert_array_equal(
            store.read("train", slice(None)),
            pad_sequences(rows, max_len, padding, truncating, value=pad_id),
        )
        np.testing.assert_array_equal(store.lengths("train"), lengths)
        assert store.pad_id == pad_id and store.start_id is None and store.oov_id is None


class RowsOnly:
    """A 2-D array-like that records the largest block read (a memmap or zarr array would do
    the same): proves a table is read a chunk at a time, never whole."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.ndim, self.shape, self.dtype = array, 2, array.shape, array.dtype
        self.largest = 0

    def __getitem__(self, index: slice) -> np.ndarray:
        block = self.array[index]
        self.largest = max(self.largest, block.shape[0])
        return block


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("truncating", PADDINGS)
def test_2d_array_ids_streamed_as_pad_sequences(tmp_path, rng, padding, truncating):
    array = rng.integers(0, 300, size=(23, 9)).astype(np.int32)
    table = RowsOnly(array)
    store = build_store_from_ids(
        tmp_path / "t.zarr",
        {"train": table, "test": array[:5]},
        StoreSpec(vocab_size=300, max_len=6, padding=padding, truncating=truncating, chunk_rows=4),
    )
    np.testing.assert_array_equal(
        store.read("train", slice(None)), pad_sequences(array, 6, padding, truncating)
    )
    np.testing.assert_array_equal(store.lengths("train"), np.full(23, 9))
    assert table.largest == 4  # chunk_rows rows at a time
    # The same rows as ragged lists give the same arrays.
    again = build_store_from_ids(
        tmp_path / "r.zarr",
        {"train": [list(r) for r in array]},
        StoreSpec(vocab_size=300, max_len=6, padding=padding, truncating=truncating, chunk_rows=4),
    )
    np.testing.assert_array_equal(
        again.read("train", slice(None)), store.read("train", slice(0, 23))
    )


def test_ids_from_generators_and_tokens(tmp_path, rng):
    rows = ragged(rng, 30, 40)
    tokens = [f"tok{i}" for i in range(40)]
    store = build_store_from_ids(
        tmp_path / "g.zarr",
        {"train": (r for r in rows), "validation": lambda: iter(rows[:3])},
        StoreSpec(vocab_size=40, max_len=8, chunk_rows=7),
        labels={"train": (int(len(r) % 2) for r in rows)},
        tokens=tokens,
    )
    assert store.splits == ("train", "validation")
    np.testing.assert_array_equal(
        store.read("train", slice(None)), pad_sequences(rows, 8, "pre", "pre")
    )
    np.testing.assert_array_equal(store.labels("train"), [len(r) % 2 for r in rows])
    np.testing.assert_array_equal(store.labels("validation"), [-1, -1, -1])  # left out: unlabelled
    assert store.token_strings == tuple(tokens) and store.num_classes == 2
    # A token -> id mapping (a Hugging Face tokenizer's get_vocab()) fills the gaps with
    # placeholders.
    mapped = build_store_from_ids(
        tmp_path / "m.zarr",
        {"train": rows},
        StoreSpec(vocab_size=40, max_len=8),
        tokens={"[PAD]": 0, "hello": 5},
    )
    assert mapped.token_strings[0] == "[PAD]" and mapped.token_strings[5] == "hello"
    assert mapped.token_strings[6] == ID_TOKEN.format(id=6)


def test_ids_above_65535_are_uint32_and_read_by_kernel_and_sequence(tmp_path):
    from textvae.batching.sequence import OneHotSequence

    rows = [[69_999, 65_536, 3], [65_535, 66_000, 0, 1], [68_123]]
    store = build_store_from_ids(
        tmp_path / "big.zarr",
        {"train": rows},
        StoreSpec(vocab_size=70_000, max_len=4, chunk_rows=2),
    )
    ids = store.read("train", slice(None))
    assert ids.dtype == np.uint32 and store.token_dtype == np.uint32
    expected = pad_sequences(rows, 4, "pre", "pre")
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(onehot(ids, 70_000, dtype="uint8").argmax(-1), expected)
    seq = OneHotSequence(
        store, "train", batch_size=3, shuffle=False, dtype="uint8", sentiment_name=None
    )
    x, y = seq[0]
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y["reconstruction"].argmax(-1), expected)
    assert y["reconstruction"].shape == (3, 4, 70_000)
    assert y["reconstruction"][0, 1, 69_999] == 1


# --------------------------------------------------------------------------------------------
# Labels: none, binary, classes


def test_store_without_labels(tmp_path, rng):
    store = build_store_from_ids(
        tmp_path / "n.zarr", {"train": ragged(rng, 5, 20)}, StoreSpec(vocab_size=20, max_len=4)
    )
    assert store.num_classes is None and not store.has_labels
    assert store.attrs["num_classes"] is None and store.attrs["format"] == FORMAT == 2
    assert "labels" not in zarr.open_group(store.path, mode="r")["train"]
    with pytest.raises(InvalidArgumentError, match="has no labels"):
        store.labels("train")
    assert verify_store(store.path).ok


@pytest.mark.parametrize(
    ("num_classes", "dtype"), [(None, np.int8), (5, np.int8), (300, np.int32)], ids=str
)
def test_class_labels(tmp_path, rng, num_classes, dtype):
    n = 17
    classes = 2 if num_classes is None else num_classes
    labels = rng.integers(0, classes, size=n)
    store = build_store_from_ids(
        tmp_path / "c.zarr",
        {"train": ragged(rng, n, 20), "test": ragged(rng, 3, 20)},
        StoreSpec(vocab_size=20, max_len=4, chunk_rows=4),
        labels={"train": labels, "test": [classes - 1, 0, 1]},
        num_classes=num_classes,
    )
    assert store.num_classes == classes and store.has_labels
    got = store.labels("train")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_array_equal(store.labels("test", [2, 0]), [1, classes - 1])
    assert TokenStore.open(store.path).num_classes == classes


# --------------------------------------------------------------------------------------------
# Texts with a tokenizer of the user's


# --------------------------------------------------------------------------------------------
# Formats: 2 written, 1 still read


def as_format_1(store: TokenStore) -> None:
    """Rewrite a binary store's metadata as format 1 wrote it (no num_classes): the arrays of
    the two formats are the same for a binary store of textvae's ids."""
    group = zarr.open_group(store.path, mode="r+")
    meta = dict(group.attrs["textvae"])
    del meta["num_classes"]
    group.attrs["textvae"] = {**meta, "format": 1}


def test_format_1_store_still_reads(tmp_path, corpus_dir):
    built = build_store(
        tmp_path / "f1.zarr", open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16)
    )
    assert built.format == 2 and built.num_classes == 2
    tokens, labels = built.read("test", slice(None)), built.labels("test")
    as_format_1(built)
    old = TokenStore.open(tmp_path / "f1.zarr")
    assert old.format == 1 and "num_classes" not in old.attrs
    assert old.num_classes == 2 and old.has_labels and old.pad_id == 0
    np.testing.assert_array_equal(old.read("test", slice(None)), tokens)
    np.testing.assert_array_equal(old.labels("test"), labels)
    assert old.vocab.tokens == built.vocab.tokens
    assert verify_store(old.path).ok


def test_unknown_format_and_bad_num_classes_refused(tmp_path, rng):
    store = build_store_from_ids(
        tmp_path / "s.zarr", {"train": ragged(rng, 4, 9)}, StoreSpec(vocab_size=9, max_len=3)
    )
    group = zarr.open_group(store.path, mode="r+")
    meta = dict(group.attrs["textvae"])
    group.attrs["textvae"] = {**meta, "format": 3}
    with pytest.raises(StoreFormatError, match="format 3; this version reads formats 1 and 2"):
        TokenStore.open(store.path)
    group.attrs["textvae"] = {**meta, "num_classes": 1}
    with pytest.raises(StoreFormatError, match="num_classes=1 is not valid"):
        TokenStore.open(store.path)
    group.attrs["textvae"] = {**meta, "num_classes": 2}  # labels promised, none stored
    with pytest.raises(StoreFormatError, match="'labels' array of split 'train' is missing"):
        TokenStore.open(store.path)
    group.attrs["textvae"] = {**meta, "pad_id": 9}
    with pytest.raises(StoreFormatError, match="pad_id=9 is not valid"):
        TokenStore.open(store.path)


def test_vocab_of_an_id_store_is_a_clear_error(tmp_path):
    store = build_store_from_ids(
        tmp_path / "v.zarr", {"train": [[4]]}, StoreSpec(vocab_size=9, max_len=2)
    )
    with pytest.raises(InvalidArgumentError, match=r"built from token ids.*store\.token_strings"):
        _ = store.vocab
    assert store.token_strings == tuple(ID_TOKEN.format(id=i) for i in range(9))


# --------------------------------------------------------------------------------------------
# Bad input: one clear error each, nothing left behind

ROWS = [[3, 4], [5]]

ID_CASES = {
    "id-too-large": (
        dict(ids={"train": [[3], [4, 5, 10]]}),
        "row 1: id 10 at position 2 is outside",
    ),
    "id-negative": (dict(ids={"train": [[3, -1]]}), "row 0: id -1 at position 1 is outside"),
    "id-in-2d-array": (
        dict(ids={"train": np.array([[1, 2], [3, 12]])}),
        "row 1: id 12 at position 1 is outside",
    ),
    "ragged-float": (
        dict(ids={"train": [[3], [4, 2.5]]}),
        r"row 1 holds 2\.5 \(float\) at position 1",
    ),
    "ragged-nested": (
        dict(ids={"train": [[3, [4, 5]]]}),
        r"row 0 holds \[4, 5\] \(list\) at position 1",
    ),
    "row-a-text": (dict(ids={"train": ["a text"]}), "row 0 is a str.*build_store_from_texts"),
    "float-array": (dict(ids={"train": np.ones((2, 3))}), "2-D array of float64, not of integers"),
    "1-d-array": (dict(ids={"train": np.arange(3)}), "shape \\(3,\\): wrap one sequence"),
    "empty-split": (dict(ids={"train": []}), "ids of split 'train' hold no rows"),
    "not-a-mapping": (dict(ids=[[1, 2]]), "`ids` must map split names"),
    "label-out-of-range": (
        dict(labels={"train": [0, 3]}, num_classes=3),
        "labels of split 'train', row 1: 3 is not in \\[0, num_classes=3\\)",
    ),
    "label-minus-one": (dict(labels={"train": [-1, 0]}), "row 0: -1 is not in \\[0, num_classes=2"),
    "label-float": (dict(labels={"train": [0.0, 0.5]}), "row 1: 0.5 \\(float\\) is not an integer"),
    "label-stream-out-of-range": (
        dict(labels={"train": iter([1, 2])}),
        "row 1: 2 is not in \\[0, num_classes=2\\)",
    ),
    "labels-short": (dict(labels={"train": [1]}), "has 2 rows of ids but 1 labels"),
    "labels-stream-short": (
        dict(labels={"train": iter([1])}),
        "hold 1 values, but its ids have more",
    ),
    "labels-stream-long": (dict(labels={"train": iter([1, 0, 1])}), "more values than its 2 rows"),
    "labels-unknown-split": (dict(labels={"dev": [1]}), "`labels` has split 'dev'"),
    "labels-2d": (dict(labels={"train": np.zeros((2, 2), int)}), "shape \\(2, 2\\)"),
    "num-classes-alone": (dict(num_classes=3), "`num_classes` applies to labels"),
    "num-classes-1": (dict(labels={"train": [0, 0]}, num_classes=1), "`num_classes` must be an"),
    "pad-id": (dict(pad_id=10), "`pad_id` must be an integer in \\[0, 10\\)"),
    "tokens-short": (dict(tokens=["a"] * 9), "one token per id, vocab_size=10 of them"),
    "tokens-mapping-id": (dict(tokens={"a": 10}), "gives 'a' the id 10, outside"),
    "split-slash": (dict(ids={"a/b": ROWS}), "split name 'a/b' cannot be stored"),
    "split-empty": (dict(ids={"": ROWS}), "split name '' cannot be stored \\(it is empty"),
    "split-dots": (dict(ids={"..": ROWS}), "only periods"),
    "split-dunder": (dict(ids={"__x": ROWS}), "zarr reserves names"),
    "split-vocab": (dict(ids={"vocab": ROWS}), "the store's own vocab node"),
    "split-case": (dict(ids={"train": ROWS, "Train": ROWS}), "differ only in case"),
    "split-not-str": (dict(ids={3: ROWS}), "split names must be str"),
}


@pytest.mark.parametrize("case", ID_CASES, ids=list(ID_CASES))
def test_bad_ids_input_one_clear_error(tmp_path, case):
    changes, message = ID_CASES[case]
    kwargs = {"ids": {"train": ROWS}} | changes
    path = tmp_path / "bad.zarr"
    with pytest.raises(InvalidArgumentError, match=message):
        build_store_from_ids(path, spec=StoreSpec(vocab_size=10, max_len=3, chunk_rows=1), **kwargs)
    assert not path.exists()  # a failed build leaves nothing behind


def test_late_bad_row_removes_the_partial_store(tmp_path):
    rows = [[1, 2]] * 50 + [[1, 99]]
    path = tmp_path / "late.zarr"
    with pytest.raises(InvalidArgumentError, match="row 50: id 99"):
        build_store_from_ids(
            path, {"train": rows}, StoreSpec(vocab_size=10, max_len=3, chunk_rows=8)
        )
    assert not path.exists()


def test_the_top_level_names_build_stores(tmp_path):
    # What a user of `import textvae` runs: both functions build a store that reads back.
    spec = StoreSpec(vocab_size=10, max_len=3)
    ids = textvae.build_store_from_ids(tmp_path / "ids.zarr", {"train": ROWS}, spec)
    assert ids.read("train", slice(None)).tolist() == [[0, 3, 4], [0, 0, 5]]
    texts = textvae.build_store_from_texts(tmp_path / "texts.zarr", {"train": ["a b", "b"]}, spec)
    assert texts.vocab.decode(texts.read("train", [0])[0]) == ["a", "b"]
    assert {"build_store_from_ids", "build_store_from_texts"} <= set(textvae.__all__)
