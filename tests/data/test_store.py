"""TokenStore: build, open, validate and read, against an independent reference encoding."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textvae.data import (
    StoreSpec,
    TokenStore,
    build_store,
    open_corpus,
)
from textvae.data.vocab import Vocabulary, tokenize
from textvae.errors import (
    IncompleteStoreError,
    StoreExistsError,
    StoreFormatError,
    StoreMismatchError,
    StoreNotFoundError,
    StoreWriteError,
    TextVAEDeprecationWarning,
    TextVAEError,
)
from textvae.testing import random_reviews, write_jsonl


def reference_encoding(
    train: list[tuple[str, int]],
    reviews: list[tuple[str, int]],
    vocab_size: int,
    max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
) -> np.ndarray:
    """The obvious encoding: Keras imdb ids from train counts, then pad_sequences' rules."""
    counts = Counter(tok for text, _ in train for tok in tokenize(text))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 3]
    ids_of = {w: i + 3 for i, w in enumerate(ranked)}
    out = np.zeros((len(reviews), max_len), dtype=np.int64)
    for r, (text, _) in enumerate(reviews):
        ids = [1] + [ids_of.get(t, 2) for t in tokenize(text)]
        if len(ids) > max_len:
            ids = ids[-max_len:] if truncating == "pre" else ids[:max_len]
        if padding == "pre":
            out[r, max_len - len(ids) :] = ids
        else:
            out[r, : len(ids)] = ids
    return out


def _reviews(path: Path) -> list[tuple[str, int]]:
    return [(r["text"], r["label"]) for r in map(json.loads, path.read_text().splitlines())]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_round_trip_matches_reference(tmp_path, corpus_dir, padding, truncating):
    train = _reviews(corpus_dir / "small_train.jsonl")
    test = _reviews(corpus_dir / "small_test.jsonl")
    store = build_store(
        tmp_path / "s.zarr",
        open_corpus(corpus_dir),
        StoreSpec(vocab_size=12, max_len=9, padding=padding, truncating=truncating, chunk_rows=8),
    )
    assert store.splits == ("train", "test")
    for split, reviews in (("train", train), ("test", test)):
        expected = reference_encoding(train, reviews, 12, 9, padding, truncating)
        assert store.num_rows(split) == len(reviews)
        np.testing.assert_array_equal(store.read(split, slice(None)), expected)
        np.testing.assert_array_equal(store.labels(split), [lab for _, lab in reviews])
        np.testing.assert_array_equal(
            store.lengths(split), [1 + len(tokenize(t)) for t, _ in reviews]
        )


def test_format_and_metadata(small_store):
    group = zarr.open_group(small_store.path, mode="r")
    meta = group.attrs["textvae"]
    assert meta["format"] == 2 and meta["complete"] is True
    assert meta["num_classes"] == 2  # corpora are binary
    assert (meta["vocab_size"], meta["max_len"]) == (12, 16)
    assert (meta["pad_id"], meta["start_id"], meta["oov_id"]) == (0, 1, 2)
    assert meta["splits"] == ["train", "test"]
    tokens = group["train/tokens"]
    assert tokens.dtype == np.uint16 and tokens.chunks == (8, 16)
    assert group["train/labels"].dtype == np.int8
    assert group["train/lengths"].dtype == np.int32
    assert tokens.compressors, "tokens must be stored compressed"
    assert small_store.vocab[:3] == ("<pad>", "<start>", "<oov>")
    assert len(small_store.vocab) == 12


def test_vocab_from_train_only(tmp_path):
    root = tmp_path / "c"
    write_jsonl(root / "x_train.jsonl", [("alpha alpha beta", 1), ("beta gamma", 0)])
    write_jsonl(root / "x_test.jsonl", [("zeta alpha", 1)])
    store = build_store(tmp_path / "s.zarr", open_corpus(root), StoreSpec(vocab_size=10, max_len=4))
    assert store.vocab[3:6] == ("alpha", "beta", "gamma")
    assert "zeta" not in store.vocab
    np.testing.assert_array_equal(store.read("test", slice(None)), [[0, 1, 2, 3]])


def test_large_vocab_uses_uint32(tmp_path, corpus_dir):
    store = build_store(
        tmp_path / "s.zarr", open_corpus(corpus_dir), StoreSpec(vocab_size=70000, max_len=5)
    )
    assert store.token_dtype == np.uint32
    assert store.read("train", slice(0, 2)).dtype == np.uint32
    assert len(store.vocab) == 70000


def test_read_index_arrays(small_store, rng):
    full = small_store.read("train", slice(None))
    n = small_store.num_rows("train")
    for _ in range(5):
        idx = rng.integers(-n, n, size=13)  # any order, duplicates, negatives
        np.testing.assert_array_equal(small_store.read("train", idx), full[idx])
        np.testing.assert_array_equal(
            small_store.labels("train", idx), small_store.labels("train")[idx]
        )
    np.testing.assert_array_equal(small_store.read("train", slice(5, 30, 3)), full[5:30:3])
    assert small_store.read("train", np.array([], dtype=np.int64)).shape == (0, 16)


@pytest.mark.parametrize("bad", [[0, 37], [-38], [100]])
def test_read_out_of_range(small_store, bad):
    with pytest.raises(IndexError, match=r"valid rows are \[0, 37\)"):
        small_store.read("train", np.array(bad))


def test_read_rejects_float_index(small_store):
    with pytest.raises(TypeError, match="integer"):
        small_store.read("train", np.array([0.0, 1.0]))


def test_unknown_split(small_store):
    with pytest.raises(StoreMismatchError, match="no split 'valid'"):
        small_store.read("valid", slice(None))


@pytest.mark.parametrize("split", [np.array(["train", "test"]), 0, None])
def test_split_that_is_not_a_name(small_store, split):
    with pytest.raises(StoreMismatchError, match="has no split"):
        small_store.read(split, slice(None))
    with pytest.raises(StoreMismatchError, match="has no split"):
        small_store.labels(split)


def test_missing_store(tmp_path):
    with pytest.raises(StoreNotFoundError, match="textvae-ingest"):
        TokenStore.open(tmp_path / "nope.zarr")


def test_foreign_zarr_group(tmp_path):
    zarr.open_group(tmp_path / "g.zarr", mode="w").attrs["other"] = 1
    with pytest.raises(StoreFormatError, match="not a textvae store"):
        TokenStore.open(tmp_path / "g.zarr")


def test_plain_folder_is_not_a_store(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file.txt").write_text("hello")
    with pytest.raises(StoreFormatError):
        TokenStore.open(tmp_path / "d")


def test_future_format_refused(small_store):
    group = zarr.open_group(small_store.path, mode="r+")
    group.attrs["textvae"] = {**group.attrs["textvae"], "format": 3}
    with pytest.raises(StoreFormatError, match="format 3"):
        TokenStore.open(small_store.path)


def test_damaged_store_refused(small_store):
    group = zarr.open_group(small_store.path, mode="r+")
    del group["test/labels"]
    with pytest.raises(StoreFormatError, match="'test'"):
        TokenStore.open(small_store.path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 20000}, "vocab_size=12"),
        ({"max_len": 300}, "max_len=16"),
        ({"split": "valid"}, "no split"),
    ],
)
def test_expectation_mismatch(small_store, kwargs, message):
    with pytest.raises(StoreMismatchError, match=message):
        TokenStore.open(small_store.path, **kwargs)


def test_interrupted_build_leaves_nothing_valid(tmp_path, corpus_dir):
    target = tmp_path / "s.zarr"

    def interrupt(stage: str, n: int) -> None:
        if stage == "train" and n >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_store(
            target,
            open_corpus(corpus_dir),
            StoreSpec(vocab_size=12, max_len=8, chunk_rows=8),
            progress=interrupt,
        )
    with pytest.raises(TextVAEError):
        TokenStore.open(target)


def test_incomplete_store_refused(small_store):
    # What a build killed with SIGKILL leaves behind: arrays, but no `complete` flag.
    group = zarr.open_group(small_store.path, mode="r+")
    group.attrs["textvae"] = {**group.attrs["textvae"], "complete": False}
    with pytest.raises(IncompleteStoreError, match="incomplete"):
        TokenStore.open(small_store.path)


def test_existing_path_not_overwritten(tmp_path, corpus_dir, small_store):
    before = small_store.read("train", slice(None))
    with pytest.raises(StoreExistsError, match="--overwrite"):
        build_store(small_store.path, open_corpus(corpus_dir), StoreSpec(vocab_size=20, max_len=4))
    again = TokenStore.open(small_store.path)
    np.testing.assert_array_equal(again.read("train", slice(None)), before)
    rebuilt = build_store(
        small_store.path,
        open_corpus(corpus_dir),
        StoreSpec(vocab_size=20, max_len=4),
        overwrite=True,
    )
    assert (rebuilt.vocab_size, rebuilt.max_len) == (20, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"vocab_size": 3}, "vocab_size"),
        ({"max_len": 0}, "max_len"),
        ({"padding": "middle"}, "padding"),
        ({"chunk_rows": 0}, "chunk_rows"),
    ],
)
def test_bad_build_arguments(tmp_path, corpus_dir, kwargs, name):
    args = {"vocab_size": 12, "max_len": 8, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), StoreSpec(**args))
    assert not (tmp_path / "s.zarr").exists()


def test_store_does_not_pickle_but_path_does(small_store):
    with pytest.raises(TypeError, match="path"):
        pickle.dumps(small_store)
    assert TokenStore.open(pickle.loads(pickle.dumps(small_store.path))).num_rows("test") == 11


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**16),
    n_train=st.integers(1, 30),
    vocab_size=st.integers(4, 30),
    max_len=st.integers(1, 12),
    chunk_rows=st.integers(1, 9),
)
def test_round_trip_property(tmp_path_factory, seed, n_train, vocab_size, max_len, chunk_rows):
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("h")
    train = random_reviews(rng, n_train, max_words=15)
    write_jsonl(root / "c" / "c_train.jsonl", train)
    store = build_store(
        root / "s.zarr",
        open_corpus(root / "c"),
        StoreSpec(vocab_size=vocab_size, max_len=max_len, chunk_rows=chunk_rows),
    )
    expected = reference_encoding(train, train, vocab_size, max_len)
    np.testing.assert_array_equal(store.read("train", slice(None)), expected)
    idx = rng.permutation(n_train)
    np.testing.assert_array_equal(store.read("train", idx), expected[idx])


# --------------------------------------------------------------------------------------------
# The store's vocabulary


def test_vocab_is_the_corpus_vocabulary_padded(small_store, corpus_dir):
    vocab = small_store.vocab
    assert isinstance(vocab, Vocabulary)
    assert small_store.vocab is vocab  # read once
    assert vocab == open_corpus(corpus_dir).vocabulary(12).padded(12)
    # the ids stored are the ids the vocabulary gives the text
    text, _ = _reviews(corpus_dir / "small_train.jsonl")[0]
    row = small_store.read("train", [0])[0]
    assert vocab.decode(row) == vocab.decode(vocab.encode(tokenize(text))[-16:])
    assert json.loads(json.dumps(list(vocab))) == list(vocab.tokens)  # what vocab.json holds


def test_damaged_vocab_refused(small_store):
    group = zarr.open_group(small_store.path, mode="r+")
    group["vocab"][0] = "x"  # id 0 must be <pad>
    with pytest.raises(StoreFormatError, match="'vocab' array is not a textvae vocabulary"):
        _ = TokenStore.open(small_store.path).vocab


# --------------------------------------------------------------------------------------------
# Paths and URLs


def test_file_url_is_a_local_path(small_store, corpus_dir, tmp_path):
    opened = TokenStore.open(f"file://{small_store.path}")
    assert opened.path == str(small_store.path)
    np.testing.assert_array_equal(
        opened.read("test", slice(None)), small_store.read("test", slice(None))
    )
    built = build_store(
        f"file://{tmp_path / 'f.zarr'}",
        open_corpus(corpus_dir),
        StoreSpec(vocab_size=12, max_len=4),
    )
    assert built.path == str(tmp_path / "f.zarr") and (tmp_path / "f.zarr").is_dir()


@pytest.mark.parametrize("depth", [1, 2], ids=["file-parent", "file-grandparent"])
def test_unwritable_store_path(tmp_path, corpus_dir, depth):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker.joinpath(*["sub"] * (depth - 1), "s.zarr")
    calls = []
    with pytest.raises(StoreWriteError) as info:
        build_store(
            target,
            open_corpus(corpus_dir),
            StoreSpec(vocab_size=12, max_len=4),
            progress=lambda *a: calls.append(a),
        )
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert str(target) in message and f"{blocker} is a file" in message
    assert "\n" not in message
    assert calls == [], "the path is checked before any work"
    assert blocker.read_text() == "not a folder"


def test_missing_parent_folders_are_created(tmp_path, corpus_dir):
    target = tmp_path / "new" / "deeper" / "s.zarr"
    store = build_store(target, open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=4))
    assert store.num_rows("train") == 37


# --------------------------------------------------------------------------------------------
# resolve_store: from what a user passes to an opened store


def test_token_strings_and_the_deprecated_tokens(small_store):
    strings = small_store.token_strings
    assert len(strings) == small_store.vocab_size and strings[:3] == ("<pad>", "<start>", "<oov>")
    assert tuple(small_store.vocab) == strings
    with pytest.warns(TextVAEDeprecationWarning, match=r"TokenStore\.token_strings"):
        assert small_store.tokens == strings
