"""build_store_from_texts: texts split by any tokenizer, checked as they stream."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from textvae.cli import ingest_main
from textvae.data import (
    StoreSpec,
    TokenStore,
    build_store_from_texts,
    open_corpus,
)
from textvae.data.vocab import tokenize
from textvae.errors import InvalidArgumentError, TextVAEError
from textvae.testing import random_reviews, write_jsonl


def reference_store(texts, tokenizer, vocab_size, max_len):
    """The obvious encoding: vocabulary from the first split's counts, [1] + ids, padded and
    truncated by Keras' own pad_sequences ("pre")."""
    from keras.utils import pad_sequences

    first = next(iter(texts.values()))
    counts = collections.Counter(t for text in first for t in tokenizer(text))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 3]
    ids_of = {w: i + 3 for i, w in enumerate(ranked)}
    return {
        split: pad_sequences(
            [[1] + [ids_of.get(t, 2) for t in tokenizer(text)] for text in rows],
            maxlen=max_len,
            dtype="int64",
        )
        for split, rows in texts.items()
    }


def shouting(text: str) -> list[str]:
    """A tokenizer unlike the built-in one: case kept, split on spaces only."""
    return text.split()


def test_texts_with_a_custom_tokenizer(tmp_path, rng):
    reviews = [text.replace("a", "A", 1) for text, _ in random_reviews(rng, 25)]
    # "sup" is not named train: the vocabulary comes from the first split.
    texts = {"sup": reviews[:20], "held-out.v2": reviews[20:]}
    store = build_store_from_texts(
        tmp_path / "x.zarr",
        texts,
        StoreSpec(vocab_size=12, max_len=10, chunk_rows=6),
        tokenizer=shouting,
        labels={"sup": [i % 4 for i in range(20)]},
        num_classes=4,
    )
    expected = reference_store(texts, shouting, 12, 10)
    for split in texts:
        np.testing.assert_array_equal(store.read(split, slice(None)), expected[split])
    assert store.vocab.index() == {t: i for i, t in enumerate(store.token_strings) if i >= 3}
    np.testing.assert_array_equal(store.labels("held-out.v2"), [-1] * 5)
    assert store.num_classes == 4 and store.start_id == 1 and store.oov_id == 2
    # The built-in tokenizer stays the default, and differs here ("A" is lowercased).
    default = build_store_from_texts(
        tmp_path / "d.zarr", texts, StoreSpec(vocab_size=12, max_len=10)
    )
    np.testing.assert_array_equal(
        default.read("sup", slice(None)), reference_store(texts, tokenize, 12, 10)["sup"]
    )
    assert not default.has_labels


def test_ingest_cli_takes_a_tokenizer(tmp_path, rng, capsys):
    corpus = tmp_path / "c.jsonl"
    write_jsonl(corpus, random_reviews(rng, 15))
    argv = [str(corpus), str(tmp_path / "cli.zarr"), "--vocab", "12", "--max-len", "8"]
    assert ingest_main([*argv, "--quiet", "--tokenizer", "builtins:str.split"]) == 0
    store = TokenStore.open(tmp_path / "cli.zarr")
    texts = {"train": [text for text, _ in open_corpus(corpus).reviews("train")]}
    np.testing.assert_array_equal(
        store.read("train", slice(None)), reference_store(texts, shouting, 12, 8)["train"]
    )
    capsys.readouterr()
    assert ingest_main([*argv, "--overwrite", "--tokenizer", "no_such_module:f"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot import the module of tokenizer='no_such_module:f'" in err
    assert len(err.splitlines()) == 1


TEXT_CASES = {
    "not-a-str": (dict(texts={"train": ["ok", b"bytes"]}), "row 1 is a bytes, not a str: decode"),
    "iterator-vocab-split": (
        dict(texts={"train": iter(["a b"])}),
        "are an iterator, which can be read once",
    ),
    "tokenizer-not-callable": (dict(tokenizer="split"), "`tokenizer` must be a callable"),
    "tokenizer-gives-ids": (
        dict(tokenizer=lambda text: [1, 2]),
        "must return a list of str tokens.*build_store_from_ids",
    ),
    "label-out-of-range": (
        dict(labels={"train": [0, 5]}, num_classes=5),
        "row 1: 5 is not in \\[0, num_classes=5\\)",
    ),
    "labels-long": (dict(labels={"train": [0, 1, 1]}), "has 2 rows of texts but 3 labels"),
    "split-name": (dict(texts={"x/y": ["a"]}), "split name 'x/y' cannot be stored"),
}


@pytest.mark.parametrize("case", TEXT_CASES, ids=list(TEXT_CASES))
def test_bad_texts_input_one_clear_error(tmp_path, case):
    changes, message = TEXT_CASES[case]
    kwargs = {"texts": {"train": ["a b", "b c"]}} | changes
    path = tmp_path / "bad.zarr"
    with pytest.raises(InvalidArgumentError, match=message) as info:
        build_store_from_texts(path, spec=StoreSpec(vocab_size=10, max_len=3), **kwargs)
    assert isinstance(info.value, (TextVAEError, ValueError))
    assert not path.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("str.split", "must name a function as module:function"),
        ("builtins:", "must name a function as module:function"),
        ("no_such_module_xyz:f", "cannot import the module of tokenizer='no_such_module_xyz:f'"),
        ("builtins:str.no_such", "has no attribute 'no_such'"),
        ("math:pi", "`tokenizer` must be a callable"),
    ],
)
def test_load_tokenizer_errors(spec, message):
    from textvae.data.vocab import load_tokenizer

    with pytest.raises(InvalidArgumentError, match=message):
        load_tokenizer(spec)


def test_keras_npz_corpus_refuses_a_tokenizer(tmp_path):
    from textvae.data.keras_imdb import KerasImdbCorpus
    from textvae.errors import CorpusError

    x = np.empty(1, dtype=object)
    x[0] = [1, 2]
    np.savez(tmp_path / "imdb.npz", x_train=x, y_train=np.array([1]))
    (tmp_path / "imdb_word_index.json").write_text('{"the": 1, "a": 2}')
    with pytest.raises(CorpusError, match="already tokenised"):
        KerasImdbCorpus(tmp_path / "imdb.npz").with_tokenizer(str.split)
