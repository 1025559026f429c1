"""build_store's arguments: the StoreSpec, the deprecated shape keywords, the write loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from textvae.data import (
    StoreSpec,
    TokenStore,
    build_store,
    build_store_from_ids,
    build_store_from_texts,
    open_corpus,
)
from textvae.data.chunk_encoder import ChunkEncoder
from textvae.data.location import StoreLocation
from textvae.errors import InvalidArgumentError, TextVAEDeprecationWarning

SPEC = StoreSpec(vocab_size=12, max_len=9, padding="post", chunk_rows=4)
OLD = {"vocab_size": 12, "max_len": 9, "padding": "post", "chunk_rows": 4}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_old_keywords_warn_and_build_the_same_store(tmp_path, corpus_dir):
    corpus = open_corpus(corpus_dir)
    new = build_store(tmp_path / "new.zarr", corpus, SPEC)
    with pytest.warns(TextVAEDeprecationWarning, match=r"build_store\(spec=StoreSpec") as record:
        old = build_store(tmp_path / "old.zarr", corpus, **OLD)
    assert record[0].filename == __file__  # the warning names the caller's line
    assert _files(Path(old.path)) == _files(Path(new.path))


def test_old_keywords_of_the_user_data_builders_warn(tmp_path):
    rows = {"train": [[3, 4], [5]]}
    with pytest.warns(TextVAEDeprecationWarning, match=r"build_store_from_ids\(spec="):
        old = build_store_from_ids(tmp_path / "a.zarr", rows, **OLD)
    new = build_store_from_ids(tmp_path / "b.zarr", rows, SPEC)
    assert _files(Path(old.path)) == _files(Path(new.path))
    texts = {"train": ["a b", "b"]}
    with pytest.warns(TextVAEDeprecationWarning, match=r"build_store_from_texts\(spec="):
        old = build_store_from_texts(tmp_path / "c.zarr", texts, vocab_size=12, max_len=4)
    assert old.max_len == 4 and old.vocab_size == 12


def test_spec_and_old_keywords_together_are_refused(tmp_path, corpus_dir):
    with pytest.raises(InvalidArgumentError, match="not both"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), SPEC, max_len=4)
    assert not (tmp_path / "s.zarr").exists()


def test_old_keywords_still_need_vocab_size_and_max_len(tmp_path, corpus_dir):
    with (
        pytest.warns(TextVAEDeprecationWarning),
        pytest.raises(TypeError, match="missing required keyword argument: 'max_len'"),
    ):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), vocab_size=12)


@pytest.mark.parametrize("value", [None, 0, "12"])
def test_old_keywords_refuse_bad_values_as_before(tmp_path, corpus_dir, value):
    with pytest.warns(TextVAEDeprecationWarning), pytest.raises(InvalidArgumentError):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), vocab_size=value, max_len=8)


@pytest.mark.parametrize("spec", [None, {"vocab_size": 12, "max_len": 8}, 12])
def test_spec_must_be_a_store_spec(tmp_path, corpus_dir, spec):
    with pytest.raises(InvalidArgumentError, match="`spec` must be a StoreSpec"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), spec)


def test_rows_span_several_chunks_of_labels_and_lengths(tmp_path, corpus_dir):
    # chunk_rows=1: labels and lengths are written 16 rows at a time; 37 rows cross two of
    # their chunk boundaries, and the last write is a partial chunk.
    corpus = open_corpus(corpus_dir)
    store = build_store(tmp_path / "s.zarr", corpus, StoreSpec(12, 9, chunk_rows=1))
    reviews = list(corpus.reviews("train"))
    assert store.labels("train").tolist() == [label for _, label in reviews]
    vocab = corpus.vocabulary(12)
    expected = [len(ids) for ids, _ in corpus.encoded("train", vocab)]
    assert store.lengths("train").tolist() == expected
    assert store.zarr_array("train", "lengths").chunks == (16,)


def test_the_encoder_sent_to_workers_holds_only_what_they_need(small_store, corpus_dir):
    corpus = open_corpus(corpus_dir)
    vocab = small_store.vocab
    location = StoreLocation.parse(small_store.path)
    arrays = {"train": small_store.zarr_array("train", "tokens")}
    for mode, has_vocab, has_corpus in (("ids", False, False), ("texts", True, False)):
        encoder = ChunkEncoder(location, SPEC, mode, vocab, corpus, dict(arrays))
        sent = encoder.for_workers()
        assert (sent.vocab is not None, sent.corpus is not None) == (has_vocab, has_corpus)
        assert sent.arrays == {} and encoder.arrays.keys() == {"train"}


def test_the_encoder_pads_a_chunk_and_returns_its_labels_and_lengths(tmp_path, corpus_dir):
    corpus = open_corpus(corpus_dir)
    store = build_store(tmp_path / "s.zarr", corpus, SPEC)
    encoder = ChunkEncoder(StoreLocation.parse(store.path), SPEC, "texts", store.vocab, None)
    reviews = list(corpus.reviews("train"))[4:8]
    labels, lengths = encoder("train", 4, reviews)  # rewrites chunk 1 with the same rows
    assert labels == [label for _, label in reviews]
    assert lengths == store.lengths("train", slice(4, 8)).tolist()
    again = TokenStore.open(store.path)
    np.testing.assert_array_equal(
        again.read("train", slice(None)), store.read("train", slice(None))
    )


def test_an_unknown_keyword_is_a_type_error(tmp_path, corpus_dir):
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_length'"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), SPEC, max_length=9)
