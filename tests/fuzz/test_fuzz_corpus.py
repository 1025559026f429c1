"""Fuzz of corpus files: JSONL (plain and gzip), CSV, aclImdb folders, Keras' imdb.npz and
folders of files, ingested by textvae-ingest; a success is a store of valid ids and labels."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import check_outcome, example_dir, run_command
from fuzz_strategies import WORD, fuzz_settings, mostly, npz_bytes, ragged
from hypothesis import given
from hypothesis import strategies as st

from textvae.cli import ingest_main
from textvae.data.store import TokenStore

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


LABELS = mostly(
    st.sampled_from([0, 1, "pos", "neg", "positive", "Negative", " 1 ", 1.0, True]),
    st.sampled_from([2, -1, "", None, "maybe", 0.5, [1], {"a": 1}]),
)
TEXTS = mostly(st.text(max_size=40), st.sampled_from(["x " * 5000, 7, None, ["a"]]))


def _jsonl_line(record: dict) -> st.SearchStrategy[bytes]:
    return st.just((json.dumps(record) + "\n").encode())


JSONL_LINES = mostly(
    st.one_of(
        st.fixed_dictionaries({"text": TEXTS, "label": LABELS}),
        st.fixed_dictionaries({"review": TEXTS, "sentiment": LABELS}),
    ).flatmap(_jsonl_line),
    st.one_of(
        st.fixed_dictionaries({"label": LABELS}).flatmap(_jsonl_line),
        st.sampled_from([b"\n", b"[1, 2]\n", b"{bad json\n", b"\xef\xbb\xbf{}\n", b"\xff\xfe\n"]),
        st.binary(max_size=30),
    ),
)


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


CSV_FILES = st.one_of(
    st.builds(
        _csv_bytes,
        st.sampled_from([["text", "label"], ["review", "sentiment"], ["a", "label"], ["text"], []]),
        st.lists(
            st.lists(st.one_of(WORD, st.sampled_from(["0", "1", "pos"])), max_size=3), max_size=6
        ),
    ),
    st.binary(max_size=60),
    st.sampled_from([b"", b"text,label\n", b'text,label\n"unclosed,1\n', b"text,label\n\xe9,1\n"]),
)


@st.composite
def _keras_arrays(draw) -> bytes:
    """x_train / y_train as Keras writes them (ragged lists of ranks), mostly well formed."""
    n = draw(st.integers(0, 6))
    ranks = mostly(st.integers(1, 40), st.integers(-5, 0))
    x = draw(st.lists(st.lists(ranks, max_size=8), min_size=n, max_size=n))
    y = draw(mostly(st.lists(st.integers(0, 1), min_size=n, max_size=n), st.lists(LABELS)))
    arrays = {"x_train": ragged(x), "y_train": np.asarray(y, dtype=object)}
    if draw(st.booleans()):
        arrays.update(x_test=ragged(x[:2]), y_test=np.asarray(y[:2], dtype=object))
    return npz_bytes(arrays)


NPZ_FILES = mostly(
    _keras_arrays(),
    st.one_of(
        st.builds(
            lambda x: npz_bytes({"x_train": x, "y_train": np.zeros(len(x), dtype=np.int64)}),
            st.sampled_from(
                [np.zeros((3, 4)), np.arange(3), np.array(["a", "b"]), np.zeros((2, 2))]
            ),
        ),
        st.builds(lambda: npz_bytes({"x_test": np.arange(2), "y_test": np.arange(2)})),
        st.binary(max_size=60),
    ),
)
WORD_INDEXES = mostly(
    st.lists(WORD, unique=True, max_size=30).map(
        lambda words: json.dumps({w: rank for rank, w in enumerate(words, 1)})
    ),
    st.sampled_from(['{"a": 0}', '{"a": "1"}', "[1, 2]", "{", '{"a": 1, "b": 1}', '"x"']),
)


@st.composite
def corpora(draw) -> tuple[str, dict[str, bytes]]:
    """A corpus layout and its files' bytes, relative to the corpus root."""
    layout = draw(st.sampled_from(["jsonl", "jsonl.gz", "csv", "acl", "npz", "dir"]))
    if layout in ("jsonl", "jsonl.gz"):
        body = b"".join(draw(st.lists(JSONL_LINES, max_size=8)))
        if layout == "jsonl.gz" and draw(st.booleans()):
            body = gzip.compress(body)
        return "c_train." + layout, {"c_train." + layout: body}
    if layout == "csv":
        return "c_train.csv", {"c_train.csv": draw(CSV_FILES)}
    if layout == "npz":
        return "imdb.npz", {
            "imdb.npz": draw(NPZ_FILES),
            "imdb_word_index.json": draw(WORD_INDEXES).encode(),
        }
    if layout == "acl":
        files = {}
        for split in draw(st.lists(st.sampled_from(["train", "test"]), unique=True)):
            for label in draw(st.lists(st.sampled_from(["pos", "neg"]), unique=True)):
                bodies = mostly(st.text(max_size=20).map(str.encode), st.binary(max_size=20))
                for k, body in enumerate(draw(st.lists(bodies, max_size=3))):
                    name = draw(
                        mostly(st.just(f"{k}_7.txt"), st.sampled_from([f"x{k}.txt", "a.md"]))
                    )
                    files[f"{split}/{label}/{name}"] = body
        return ".", files
    names = draw(
        st.lists(st.sampled_from(["a_train.jsonl", "b_train.jsonl", "x_test.csv", "y.csv"]))
    )
    return ".", {name: draw(JSONL_LINES) for name in names}


@fuzz_settings(80)
@given(corpus=corpora(), max_len=st.sampled_from(["1", "4", "16"]))
def test_fuzz_corpus_files(world, corpus, max_len):
    source, files = corpus
    with example_dir(world.root) as where:
        root = where / "corpus"
        root.mkdir()
        for name, body in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(body)
        store = where / "s.zarr"
        argv = [str(root / source), str(store), "--vocab", "20", "--max-len", max_len, "--quiet"]
        code, _, err = run_command(ingest_main, argv, where)
        check_outcome(f"corpus files ({Path(source).suffix or 'folder'})", code, err)
        if code != 0:
            assert not store.exists(), "a failed ingest leaves nothing that could be opened"
            return
        opened = TokenStore.open(store)
        for split in opened.splits:
            ids = opened.read(split, slice(None))
            assert ids.shape == (opened.num_rows(split), int(max_len)) and ids.shape[0] > 0
            assert ids.max() < opened.vocab_size
            assert set(np.unique(opened.labels(split))) <= {0, 1}
