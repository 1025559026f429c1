"""Tests of textvae.data.corpus: readers, counting words, and error messages."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from textvae.data.corpus import AclImdbCorpus, CsvCorpus, JsonlCorpus
from textvae.data.discover import find_imdb, open_corpus
from textvae.data.vocab import OOV_ID, tokenize
from textvae.errors import CorpusError, CorpusNotFoundError
from textvae.progress import VOCAB_STAGE

TRAIN = [
    ("A good film. Good acting!", 1),
    ("Bad, bad film.<br /><br />Awful.", 0),
    ("Good fun, it's good.", 1),
]
TEST = [("A bad plot: zebra!", 0), ("Good.", 1)]


# --------------------------------------------------------------------------------------------
# Writers of small corpora


def write_jsonl(path: Path, reviews, *, compress: bool = False) -> Path:
    lines = "".join(
        json.dumps({"text": t, "label": y, "id": i}) + "\n" for i, (t, y) in enumerate(reviews)
    )
    data = lines.encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_csv(path: Path, reviews, header=("review", "sentiment"), labels=None) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *header])
        for i, (text, label) in enumerate(reviews):
            writer.writerow([i, text, labels[label] if labels else label])
    return path


def write_acl(root: Path, splits) -> Path:
    for split, reviews in splits.items():
        for sub in ("pos", "neg"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        # Numeric ids out of lexicographic order: 10 must come after 2.
        counters = {0: 0, 1: 0}
        for text, label in reviews:
            i = counters[label]
            counters[label] += 1
            rid = [2, 10, 1][i] if i < 3 else i * 100
            sub = "pos" if label else "neg"
            (root / split / sub / f"{rid}_{7 if label else 3}.txt").write_text(text, "utf-8")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled, ignored", "utf-8")
    return root


# --------------------------------------------------------------------------------------------
# Readers


def check_texts(corpus):
    assert corpus.splits == ("train", "test")
    assert list(corpus.reviews("train")) == TRAIN
    assert list(corpus.reviews("test")) == TEST


def test_jsonl_folder(tmp_path):
    write_jsonl(tmp_path / "imdb_train.jsonl", TRAIN)
    write_jsonl(tmp_path / "imdb_test.jsonl", TEST)
    corpus = open_corpus(tmp_path)
    assert isinstance(corpus, JsonlCorpus)
    check_texts(corpus)
    assert "imdb_train.jsonl" in corpus.source


def test_jsonl_gz_folder_and_single_file(tmp_path):
    write_jsonl(tmp_path / "imdb_train.jsonl.gz", TRAIN, compress=True)
    write_jsonl(tmp_path / "imdb_test.jsonl.gz", TEST, compress=True)
    (tmp_path / "imdb_word_index.json").write_text("{}", "utf-8")  # ignored, as in shared/
    check_texts(open_corpus(tmp_path))
    single = open_corpus(str(tmp_path / "imdb_test.jsonl.gz"))
    assert single.splits == ("train",)
    assert list(single.reviews("train")) == TEST


@pytest.mark.parametrize(
    ("name", "header", "labels"),
    [
        ("csv", ("review", "sentiment"), {0: "negative", 1: "positive"}),
        ("csv.gz", ("Text", "Label"), None),
        ("csv", ("text", "label"), {0: "neg", 1: "pos"}),
    ],
    ids=["review-sentiment-words", "gzip-text-label-ints", "text-label-pos-neg"],
)
def test_csv_folder(tmp_path, name, header, labels):
    write_csv(tmp_path / f"train.{name}", TRAIN, header, labels)
    write_csv(tmp_path / f"test.{name}", TEST, header, labels)
    corpus = open_corpus(tmp_path)
    assert isinstance(corpus, CsvCorpus)
    check_texts(corpus)


def test_csv_multiline_and_bom(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes('\ufefftext,label\n"line one,\nline two",1\n'.encode())
    assert list(open_corpus(path).reviews("train")) == [("line one,\nline two", 1)]


def test_acl_imdb_folder_order_and_labels(tmp_path):
    root = write_acl(tmp_path / "aclImdb", {"train": TRAIN, "test": TEST})
    for path in (root, tmp_path):  # the folder itself, or the one holding aclImdb/
        corpus = open_corpus(path)
        assert isinstance(corpus, AclImdbCorpus)
        assert corpus.splits == ("train", "test")
        # neg first, then pos; each by numeric id (2 < 10), never unsup
        assert list(corpus.reviews("train")) == [TRAIN[1], TRAIN[0], TRAIN[2]]
        assert list(corpus.reviews("test")) == TEST


# --------------------------------------------------------------------------------------------
# Counting, vocabulary from train only, encoding


def test_vocabulary_built_from_train_only(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "test.jsonl", TEST)
    corpus = open_corpus(tmp_path)
    calls = []
    vocab = corpus.vocabulary(1000, progress=lambda stage, n: calls.append((stage, n)))
    assert calls[-1] == (VOCAB_STAGE, len(TRAIN))
    assert "zebra" not in vocab.index()  # only in test
    assert vocab.tokens[3:5] == (".", "good")  # 4 each: the tie goes to the smaller string
    test_ids = [ids for ids, _ in corpus.encoded("test", vocab)]
    assert test_ids[0] == vocab.encode(tokenize(TEST[0][0]))
    assert test_ids[0][tokenize(TEST[0][0]).index("zebra") + 1] == OOV_ID
    labels = [label for _, label in corpus.encoded("train", vocab)]
    assert labels == [1, 0, 1]


def test_count_words_reports_progress_every_1000(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [("w", i % 2) for i in range(2500)])
    calls = []
    corpus = open_corpus(tmp_path / "train.jsonl")
    counts = corpus.count_words(progress=lambda stage, n: calls.append((stage, n)))
    assert counts == {"w": 2500}
    assert calls == [("vocab", 1000), ("vocab", 2000), ("vocab", 2500)]


def test_unknown_split(tmp_path):
    corpus = open_corpus(write_jsonl(tmp_path / "train.jsonl", TRAIN))
    with pytest.raises(CorpusError, match="no split 'test'"):
        next(corpus.reviews("test"))


# --------------------------------------------------------------------------------------------
# Bad inputs: the exception class and a message naming the file


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CorpusNotFoundError, match=r"nope does not exist: pass"):
        open_corpus(missing)
    with pytest.raises(FileNotFoundError):
        open_corpus(missing)


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "csv", "acl"])
def test_non_utf8_file(tmp_path, fmt):
    bad = "Caf\xe9 cr\xe8me".encode("latin-1")
    if fmt == "acl":
        root = write_acl(tmp_path, {"train": TRAIN})
        path = root / "train" / "neg" / "2_3.txt"
        path.write_bytes(bad)
        expected = r"2_3\.txt is not UTF-8 \(byte 0xe9 at offset 3\)"
    elif fmt == "csv":
        path = tmp_path / "train.csv"
        path.write_bytes(b"text,label\nfine,1\n" + bad + b",0\n")
        expected = r"train\.csv:3 is not UTF-8 \(byte 0xe9 at offset 21\)"
    else:
        data = b'{"text": "ok", "label": 1}\n{"text": "' + bad + b'", "label": 0}\n'
        path = tmp_path / f"train.{fmt}"
        path.write_bytes(gzip.compress(data) if fmt.endswith("gz") else data)
        expected = rf"train\.{fmt}:2 is not UTF-8 \(byte 0xe9 at offset 40\)"
    with pytest.raises(CorpusError, match=expected) as info:
        list(open_corpus(tmp_path if fmt == "acl" else path).reviews("train"))
    assert "iconv -f latin1 -t utf-8" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"text": "no label"}', r"train\.jsonl:2: review has no label"),
        ('{"text": "x", "label": null}', r"train\.jsonl:2: review has no label"),
        ('{"text": "x", "label": 5}', r"train\.jsonl:2: unknown label 5"),
        ('{"text": "x", "label": "great"}', r"train\.jsonl:2: unknown label 'great'"),
        ('{"text": "x", "label": 1', r"train\.jsonl:2: invalid JSON"),
        ('["x", 1]', r"train\.jsonl:2: expected a JSON object"),
        ('{"label": 1}', r"train\.jsonl:2: no `text` string field"),
    ],
    ids=["missing-label", "null-label", "bad-int", "bad-string", "bad-json", "array", "no-text"],
)
def test_bad_jsonl_records(tmp_path, line, expected):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok", "label": 1}\n' + line + "\n", "utf-8")
    with pytest.raises(CorpusError, match=expected) as info:
        list(open_corpus(path).reviews("train"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("text,label\nok,1\nnothing,\n", r"train\.csv:3: review has no label"),
        ("text,label\nok,1\nx,maybe\n", r"train\.csv:3: unknown label 'maybe'"),
        ("text,label\nok,1\nshort\n", r"train\.csv:3: expected at least 2 columns"),
    ],
    ids=["missing-label", "bad-label", "short-row"],
)
def test_bad_csv_records(tmp_path, rows, expected):
    path = tmp_path / "train.csv"
    path.write_text(rows, "utf-8")
    with pytest.raises(CorpusError, match=expected):
        list(open_corpus(path).reviews("train"))


def test_csv_field_over_the_size_limit_says_how_to_read_it(tmp_path, capsys):
    """Python's csv refuses a field over 131,072 characters: the error names the line where the
    field starts and the ways past it; the limit a user raises is honoured."""
    import csv

    from textvae.cli import EXIT_USER_ERROR, ingest_main

    path = tmp_path / "train.csv"
    long = "good " * 30000  # 150,000 characters
    path.write_text(f'text,label\nok,1\nfine,0\n"{long}",1\nafter,0\n', "utf-8")
    limit = csv.field_size_limit()
    with pytest.raises(CorpusError) as exc:
        list(open_corpus(path).reviews("train"))
    message = str(exc.value)
    assert f"train.csv:4: a field is over Python's CSV limit of {limit:,} characters" in message
    assert "JSON Lines" in message and "csv.field_size_limit(N)" in message
    assert "quote" in message
    code = ingest_main([str(path), str(tmp_path / "s.zarr"), "--vocab", "12", "--max-len", "8"])
    assert code == EXIT_USER_ERROR
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "csv.field_size_limit" in err[0], err
    assert csv.field_size_limit() == limit  # reading leaves the process-wide limit alone
    try:
        csv.field_size_limit(1_000_000)  # what the message suggests, from Python
        reviews = list(open_corpus(path).reviews("train"))
    finally:
        csv.field_size_limit(limit)
    assert [label for _, label in reviews] == [1, 0, 1, 0] and reviews[2][0] == long


def test_csv_without_label_column_fails_at_open(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,stars\nok,5\n", "utf-8")
    with pytest.raises(CorpusError, match=r"train\.csv:1: header .* lacks a label\|sentiment"):
        open_corpus(path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "acl"])
def test_empty_corpus(tmp_path, fmt):
    if fmt == "jsonl":
        source = tmp_path / "train.jsonl"
        source.write_text("\n\n", "utf-8")
        name = "train.jsonl"
    elif fmt == "csv":
        source = tmp_path / "train.csv"
        source.write_text("text,label\n", "utf-8")
        name = "train.csv"
    else:
        (tmp_path / "train" / "pos").mkdir(parents=True)
        source, name = tmp_path, "train"
    corpus = open_corpus(source)
    with pytest.raises(CorpusError, match=rf"{name} holds no reviews in split 'train'"):
        corpus.vocabulary(100)


def test_empty_csv_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match=r"train\.csv is empty"):
        open_corpus(path)


def test_folder_without_training_split(tmp_path):
    write_jsonl(tmp_path / "imdb_test.jsonl", TEST)
    with pytest.raises(CorpusError, match=r"has no training split.*imdb_test\.jsonl"):
        open_corpus(tmp_path)
    acl = tmp_path / "acl"
    (acl / "test" / "pos").mkdir(parents=True)
    with pytest.raises(CorpusError, match=r"acl has no training split"):
        open_corpus(acl)


def test_two_training_files(tmp_path):
    write_jsonl(tmp_path / "a_train.jsonl", TRAIN)
    write_jsonl(tmp_path / "b_train.jsonl.gz", TRAIN, compress=True)
    with pytest.raises(CorpusError, match="two train files"):
        open_corpus(tmp_path)


@pytest.mark.parametrize("name", ["reviews.txt", "data.parquet", "folder"])
def test_unknown_layout(tmp_path, name):
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
        (path / "notes.txt").write_text("x", "utf-8")
    else:
        path.write_text("x", "utf-8")
    with pytest.raises(CorpusError, match=rf"{name}: unknown corpus layout: expected an aclImdb"):
        open_corpus(path)


# --------------------------------------------------------------------------------------------
# Finding and downloading IMDB


def test_find_imdb_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TEXTVAE_IMDB", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_imdb() is None
    npz = tmp_path / "kh" / "datasets" / "imdb.npz"  # found by its name and its word index
    npz.parent.mkdir(parents=True)
    npz.touch()
    assert find_imdb() is None  # no imdb_word_index.json beside it yet
    npz.with_name("imdb_word_index.json").touch()
    assert find_imdb() == npz
    (tmp_path / "shared" / "data" / "imdb").mkdir(parents=True)
    assert find_imdb() == (tmp_path / "shared" / "data" / "imdb").resolve()
    monkeypatch.setenv("TEXTVAE_IMDB", str(tmp_path / "env"))
    assert find_imdb() == tmp_path / "env"
    assert find_imdb("explicit") == Path("explicit")


def test_find_imdb_relative_to_root(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTVAE_IMDB", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    repo = tmp_path / "work" / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    monkeypatch.chdir(repo / "benchmarks")  # run from a subfolder of the repository
    shared = tmp_path / "work" / "shared" / "data" / "imdb"
    shared.mkdir(parents=True)
    assert find_imdb() is None
    assert find_imdb(root=repo) == shared.resolve()
    inside = repo / "shared" / "data" / "imdb"
    inside.mkdir(parents=True)
    assert find_imdb(root=repo) == inside.resolve()  # the repository's own copy first


def test_import_does_not_load_tensorflow():
    code = (
        "import sys, textvae.data.corpus, textvae.data.keras_imdb; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- whether parallel ingest workers may tokenise a corpus: the corpus's own answer ----------
class _OwnReviews(JsonlCorpus):
    """Reads its texts its own way, counts and encodes them as every corpus does."""

    def _reviews(self, split):
        for text, label in super()._reviews(split):
            yield text.upper(), label


class _OwnEncoding(JsonlCorpus):
    def encoded(self, split, vocab):
        for ids, label in super().encoded(split, vocab):
            yield ids[::-1], label


class _OwnCounting(_OwnReviews):
    def count_words(self, split="train", progress=None):
        return super().count_words(split, progress)


class _OwnEncodingBelow(_OwnEncoding):
    """Inherits an encoding workers do not know: still refused."""


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: open_corpus(root), True),
        (lambda root: _OwnReviews.from_path(root), True),  # only the reading differs
        (lambda root: open_corpus(root).with_tokenizer(str.split), False),
        (lambda root: _OwnEncoding.from_path(root), False),
        (lambda root: _OwnCounting.from_path(root), False),
        (lambda root: _OwnEncodingBelow.from_path(root), False),
    ],
    ids=["jsonl", "own-reviews", "own-tokenizer", "own-encoded", "own-count", "inherited"],
)
def test_a_corpus_says_whether_workers_may_tokenise_it(tmp_path, make, expected):
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "x_train.jsonl", TRAIN)
    corpus = make(tmp_path / "c")
    assert corpus.tokenizes_in_workers() is expected
    assert corpus.encodes_raw_in_workers() is False  # raw records: Keras' imdb.npz only


def test_aclimdb_and_csv_corpora_tokenise_in_workers(tmp_path):
    acl = open_corpus(write_acl(tmp_path / "acl", {"train": TRAIN}))
    csv_corpus = open_corpus(write_csv(tmp_path / "x_train.csv", TRAIN))
    assert acl.tokenizes_in_workers() and csv_corpus.tokenizes_in_workers()
