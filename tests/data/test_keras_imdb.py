"""Keras' imdb.npz: the reader (ids as keras.datasets.imdb.load_data gives them), download."""

from __future__ import annotations

import collections
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from textvae.data.discover import open_corpus
from textvae.data.keras_imdb import KerasImdbCorpus, download_keras_imdb
from textvae.data.vocab import RESERVED, Vocabulary
from textvae.errors import CorpusError, CorpusNotFoundError, DatasetUnavailableError
from textvae.progress import VOCAB_STAGE


def object_array(seqs) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


WORD_INDEX = {"the": 1, "and": 2, "a": 3, "of": 4, "film": 5, "good": 6, "bad": 7}


X_TRAIN = [[1, 5, 6], [3, 7, 5, 7], [2, 4, 1, 6, 6]]  # raw ranks, as in Keras' imdb.npz


X_TEST = [[7, 7, 1], [6]]


def write_keras(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "imdb.npz",
        x_train=object_array(X_TRAIN),
        y_train=np.array([1, 0, 1], dtype=np.int64),
        x_test=object_array(X_TEST),
        y_test=np.array([0, 1], dtype=np.int64),
    )
    (folder / "imdb_word_index.json").write_text(json.dumps(WORD_INDEX), "utf-8")
    return folder / "imdb.npz"


def keras_load_data_reference(xs, num_words, start_char=1, oov_char=2, index_from=3):
    """The id mapping of keras.datasets.imdb.load_data (Keras 3.15), without the shuffle."""
    xs = [[start_char] + [w + index_from for w in x] for x in xs]
    return [[w if w < num_words else oov_char for w in x] for x in xs]


def test_keras_npz_reader(tmp_path):
    npz = write_keras(tmp_path / "keras")
    for source in (npz, tmp_path / "keras"):
        corpus = open_corpus(source)
        assert isinstance(corpus, KerasImdbCorpus)
        assert corpus.splits == ("train", "test")
    vocab = corpus.vocabulary(7)
    assert vocab.tokens == (*RESERVED, "<unused:3>", "the", "and", "a")
    for split, xs, ys in (("train", X_TRAIN, [1, 0, 1]), ("test", X_TEST, [0, 1])):
        got = list(corpus.encoded(split, vocab))
        assert [ids for ids, _ in got] == keras_load_data_reference(xs, num_words=7)
        assert [label for _, label in got] == ys
        assert all(max(ids) < 7 for ids, _ in got)
    assert next(corpus.reviews("train")) == ("the film good", 1)
    calls = []
    assert corpus.count_words(progress=lambda *call: calls.append(call))["film"] == 2
    assert calls == [(VOCAB_STAGE, len(X_TRAIN))]
    corpus.vocabulary(7, progress=lambda *call: calls.append(call))
    assert calls[-1] == (VOCAB_STAGE, 0)  # Keras' own vocabulary: nothing to count


def test_keras_reader_rejects_a_text_vocabulary(tmp_path):
    corpus = open_corpus(write_keras(tmp_path))
    with pytest.raises(CorpusError, match="not Keras'"):
        next(corpus.encoded("train", Vocabulary.from_counts({"zzz": 9, "film": 1}, 10)))


def test_keras_npz_refuses_other_pickled_objects(tmp_path):
    npz = write_keras(tmp_path)
    np.savez(
        npz, x_train=np.array([collections.OrderedDict()], dtype=object), y_train=np.array([1])
    )
    with pytest.raises(CorpusError, match=r"imdb\.npz: cannot read x_train"):
        list(open_corpus(npz).encoded("train", Vocabulary.from_word_index(WORD_INDEX, 10)))


def test_keras_npz_without_word_index(tmp_path):
    npz = write_keras(tmp_path)
    (tmp_path / "imdb_word_index.json").unlink()
    with pytest.raises(CorpusNotFoundError, match=r"imdb_word_index\.json does not exist"):
        open_corpus(npz)


def test_download_offline_raises_dataset_unavailable(monkeypatch, tmp_path):
    def get_file(**kwargs):
        raise Exception("URL fetch failure on https://...: None -- [Errno -3]\nTemporary failure")

    fake = types.ModuleType("keras")
    fake.utils = types.SimpleNamespace(get_file=get_file)
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(
        DatasetUnavailableError, match=r"URL fetch failure.*TEXTVAE_IMDB.*--data"
    ) as info:
        download_keras_imdb(tmp_path)
    assert "\n" not in str(info.value)


def test_download_returns_npz_path(monkeypatch, tmp_path):
    calls = []

    def get_file(fname, origin, file_hash, cache_dir=None):
        calls.append((fname, origin, file_hash, cache_dir))
        return str(tmp_path / "datasets" / fname)

    fake = types.ModuleType("keras")
    fake.utils = types.SimpleNamespace(get_file=get_file)
    monkeypatch.setitem(sys.modules, "keras", fake)
    assert download_keras_imdb(tmp_path) == tmp_path / "datasets" / "imdb.npz"
    assert [c[0] for c in calls] == ["imdb.npz", "imdb_word_index.json"]
    assert calls[1][2] == "bfafd718b763782e994055a2d397834f"
    assert all(c[3] == str(tmp_path) for c in calls)


def test_workers_encode_keras_ranks_raw_not_as_texts(tmp_path):
    corpus = open_corpus(write_keras(tmp_path))
    assert not corpus.tokenizes_in_workers()  # word ranks, no text to tokenise
    assert corpus.encodes_raw_in_workers()
    vocab = corpus.vocabulary(7)
    corpus.check_vocab(vocab)  # public: the parallel writer checks before workers encode
    raw = list(corpus.raw_reviews("train"))
    assert corpus.encode_raw("train", 0, raw, vocab) == list(corpus.encoded("train", vocab))

    class Reversed(KerasImdbCorpus):
        def encoded(self, split, vocab):  # its own encoding: the parent must run it
            for ids, label in super().encoded(split, vocab):
                yield ids[::-1], label

    assert not Reversed(corpus.npz_path).encodes_raw_in_workers()


def test_check_vocab_refuses_a_text_vocabulary(tmp_path):
    corpus = open_corpus(write_keras(tmp_path))
    with pytest.raises(CorpusError, match="the vocabulary is not Keras'"):
        corpus.check_vocab(Vocabulary.from_counts({"zzz": 9, "film": 1}, 10))
