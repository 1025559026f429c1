"""Parallel ingest: the same store byte for byte as one process, and the same failures."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, ingest_config_from_args, ingest_main
from textvae.data import StoreSpec, TokenStore, build_store, open_corpus, parallel
from textvae.data.corpus import JsonlCorpus
from textvae.errors import CorpusError, InvalidArgumentError
from textvae.testing import random_reviews, write_jsonl

# Two rows a chunk: 37 training rows make 19 chunks of tokens and, at 32 rows a chunk of labels
# and lengths, two of those, so every array has several chunks and a partial last one.
SPEC = StoreSpec(vocab_size=12, max_len=9, chunk_rows=2)


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a local store (metadata and chunks) by its path inside the store."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def assert_same_bytes(a: Path, b: Path) -> None:
    files_a, files_b = store_files(a), store_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, f"files that differ: {different}"


def no_worker_left() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name != "ForkServerProcess"]


# -- the corpus formats the readers know -------------------------------------------------------
def _jsonl_gz(root: Path, splits: dict[str, list[tuple[str, int]]]) -> Path:
    root.mkdir(parents=True)
    for split, reviews in splits.items():
        lines = "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in reviews)
        (root / f"small_{split}.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    return root


def _csv_gz(root: Path, splits: dict[str, list[tuple[str, int]]]) -> Path:
    root.mkdir(parents=True)
    for split, reviews in splits.items():
        with gzip.open(root / f"small_{split}.csv.gz", "wt", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["review", "sentiment"])
            writer.writerows(reviews)
    return root


def _acl(root: Path, splits: dict[str, list[tuple[str, int]]]) -> Path:
    for split, reviews in splits.items():
        for i, (text, label) in enumerate(reviews):
            folder = root / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{7 if label else 3}.txt").write_text(text, "utf-8")
    return root


def _keras(root: Path, splits: dict[str, list[tuple[str, int]]]) -> Path:
    root.mkdir(parents=True)
    words = sorted({w for reviews in splits.values() for t, _ in reviews for w in t.split()})
    rank = {w: i + 1 for i, w in enumerate(words)}
    arrays = {}
    for split, reviews in splits.items():
        x = np.empty(len(reviews), dtype=object)
        for i, (text, _) in enumerate(reviews):
            x[i] = [rank[w] for w in text.split()]
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = np.array([y for _, y in reviews])
    np.savez(root / "imdb.npz", **arrays)
    (root / "imdb_word_index.json").write_text(json.dumps(rank))
    return root


FORMATS = {"jsonl.gz": _jsonl_gz, "csv.gz": _csv_gz, "aclImdb": _acl, "keras-npz": _keras}


@pytest.fixture
def splits(rng) -> dict[str, list[tuple[str, int]]]:
    return {"train": random_reviews(rng, 37), "test": random_reviews(rng, 11)}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_two_workers_write_the_same_bytes_as_one(tmp_path, splits, fmt):
    corpus = open_corpus(FORMATS[fmt](tmp_path / fmt, splits))
    one = build_store(tmp_path / "one.zarr", corpus, workers=1, spec=SPEC)
    two = build_store(tmp_path / "two.zarr", corpus, workers=2, spec=SPEC)
    assert two.num_rows("train") == 37 and two.num_rows("test") == 11
    assert_same_bytes(Path(one.path), Path(two.path))
    assert no_worker_left()


def test_same_bytes_with_other_padding_and_more_workers(tmp_path, corpus_dir):
    corpus = open_corpus(corpus_dir)
    spec = dataclasses.replace(SPEC, padding="post", truncating="post", max_len=5)
    one = build_store(tmp_path / "one.zarr", corpus, spec, workers=1)
    three = build_store(tmp_path / "three.zarr", corpus, spec, workers=3)
    assert_same_bytes(Path(one.path), Path(three.path))


def test_progress_reports_the_same_stages_and_totals(tmp_path, corpus_dir):
    corpus = open_corpus(corpus_dir)
    calls: dict[int, list[tuple[str, int]]] = {1: [], 2: []}
    for workers, seen in calls.items():
        build_store(
            tmp_path / f"{workers}.zarr",
            corpus,
            workers=workers,
            progress=lambda stage, n, seen=seen: seen.append((stage, n)),
            spec=SPEC,
        )
    for seen in calls.values():
        for stage in ("vocab", "train", "test"):
            counts = [n for s, n in seen if s == stage]
            assert counts == sorted(counts)
    last = {w: {s: n for s, n in seen} for w, seen in calls.items()}
    assert last[1] == last[2] == {"vocab": 37, "train": 37, "test": 11}
    stages = {w: list(dict.fromkeys(s for s, _ in seen)) for w, seen in calls.items()}
    assert stages[1] == stages[2] == ["vocab", "train", "test"]


# -- failures --------------------------------------------------------------------------------
class _TrapText(str):
    """A review text that fails when the tokenizer lowercases it (in a worker, with workers)."""

    def lower(self) -> str:
        raise CorpusError(f"review {self[:12]!r} is a trap: this is the message")


class _TrappedCorpus(JsonlCorpus):
    """The test split's 6th review is a trap: the vocabulary (train) is built, the store
    created, and encoding fails part way through the test split."""

    def _reviews(self, split):
        for i, (text, label) in enumerate(super()._reviews(split)):
            yield (_TrapText(text) if split == "test" and i == 5 else text), label


def test_a_workers_error_is_raised_as_in_one_process_and_nothing_is_left(tmp_path, corpus_dir):
    corpus = _TrappedCorpus.from_path(corpus_dir)
    assert corpus.tokenizes_in_workers()  # the trap fires in a worker
    errors = {}
    for workers in (1, 2):
        target = tmp_path / f"{workers}.zarr"
        with pytest.raises(CorpusError) as err:
            build_store(target, corpus, workers=workers, spec=SPEC)
        errors[workers] = str(err.value)
        assert not target.exists()
        assert not Path(f"{target}.lock").exists()
    assert errors[1] == errors[2] and "is a trap" in errors[1]
    assert no_worker_left()


def test_a_reader_error_after_chunks_in_flight_gives_the_same_line(tmp_path, capsys):
    root = tmp_path / "bad"
    write_jsonl(root / "x_train.jsonl", random_reviews(np.random.default_rng(1), 30))
    lines = (root / "x_train.jsonl").read_text().splitlines()
    lines[21] = '{"text": "unterminated'
    (root / "x_train.jsonl").write_text("\n".join(lines) + "\n")
    printed = {}
    for workers in ("1", "2"):
        target = tmp_path / f"{workers}.zarr"
        argv = [str(root), str(target), "--vocab", "12", "--chunk-rows", "2", "--quiet"]
        assert ingest_main([*argv, "--workers", workers]) == EXIT_USER_ERROR
        printed[workers] = capsys.readouterr().err
        assert not target.exists()
    assert printed["1"] == printed["2"]
    assert printed["1"].count("\n") == 1 and "x_train.jsonl:22: invalid JSON" in printed["1"]


def test_ctrl_c_stops_the_workers_and_removes_the_store(tmp_path, corpus_dir):
    def interrupt(stage: str, n: int) -> None:
        if stage == "train" and n >= 6:
            raise KeyboardInterrupt

    target = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        build_store(target, open_corpus(corpus_dir), workers=2, progress=interrupt, spec=SPEC)
    assert not target.exists() and not Path(f"{target}.lock").exists()
    assert no_worker_left()


def test_a_corpus_workers_cannot_tokenize_is_encoded_by_the_parent(tmp_path, corpus_dir):
    class Upper(JsonlCorpus):
        def encoded(self, split, vocab):  # its own encoding: the parent runs it
            for ids, label in super().encoded(split, vocab):
                yield ids[::-1], 1 - label

    corpus = Upper.from_path(corpus_dir)
    assert not corpus.tokenizes_in_workers()
    one = build_store(tmp_path / "one.zarr", corpus, workers=1, spec=SPEC)
    two = build_store(tmp_path / "two.zarr", corpus, workers=2, spec=SPEC)
    assert_same_bytes(Path(one.path), Path(two.path))


def test_forkserver_workers_write_the_same_bytes(tmp_path, corpus_dir, monkeypatch):
    # What a process that cannot fork safely (numba's OpenMP pool running, TensorFlow loaded)
    # uses: workers from a clean server process, the state pickled to them.
    monkeypatch.setattr(parallel, "_fork_is_safe", lambda: False)
    assert parallel._start_method() == "forkserver"
    corpus = open_corpus(corpus_dir)
    one = build_store(tmp_path / "one.zarr", corpus, workers=1, spec=SPEC)
    two = build_store(tmp_path / "two.zarr", corpus, workers=2, spec=SPEC)
    assert_same_bytes(Path(one.path), Path(two.path))


@pytest.mark.parametrize("loaded", ["tensorflow", "numba-openmp"])
def test_fork_is_refused_once_a_thread_pool_may_run(monkeypatch, loaded):
    if loaded == "numba-openmp":  # numba's parallel kernels launched their thread pool
        name, module = "numba.np.ufunc.parallel", types.SimpleNamespace(_is_initialized=True)
    else:
        name, module = loaded, types.ModuleType(loaded)
    monkeypatch.setitem(sys.modules, name, module)
    assert parallel._fork_is_safe() is False
    assert parallel._start_method() == "forkserver"


# -- arguments -------------------------------------------------------------------------------
def test_workers_argument(tmp_path, corpus_dir, capsys):
    assert ingest_config_from_args(["src", "out.zarr", "--workers", "3"]).workers == 3
    assert ingest_config_from_args(["src", "out.zarr"]).workers is None  # all cores
    assert parallel.check_workers(None) == parallel.default_workers() >= 1
    with pytest.raises(SystemExit) as exc:
        ingest_main([str(corpus_dir), str(tmp_path / "s.zarr"), "--workers", "0"])
    assert exc.value.code == EXIT_USER_ERROR
    assert "`workers` must be" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="workers"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus_dir), workers=0, spec=SPEC)
    assert not (tmp_path / "s.zarr").exists()


def test_cli_default_ingests_with_all_cores(tmp_path, corpus_dir, monkeypatch):
    used = []
    real = parallel.Pool.__init__

    def spy(self, workers, state):
        used.append(workers)
        real(self, workers, state)

    monkeypatch.setattr(parallel.Pool, "__init__", spy)
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    target = tmp_path / "s.zarr"
    assert ingest_main([str(corpus_dir), str(target), "--vocab", "12", "--quiet"]) == 0
    assert set(used) == {2}  # the counting pool and the encoding pool
    assert TokenStore.open(target).num_rows("train") == 37


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_in_a_terminal_leaves_no_store_and_no_process(tmp_path):
    # SIGINT to the whole process group, as a terminal sends it: the workers ignore it, the
    # parent stops them, removes the partial store and exits 130 with one line.
    root = tmp_path / "big"
    write_jsonl(root / "x_train.jsonl", random_reviews(np.random.default_rng(2), 20000, 200))
    target = tmp_path / "s.zarr"
    # SIGINT raises KeyboardInterrupt, as in a terminal, even when the suite runs as a background
    # job (`cmd &` in a script starts it, and so this child, with SIGINT ignored).
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from textvae.cli import ingest_main; sys.exit(ingest_main())"
    )
    argv = [str(root), str(target), "--vocab", "12", "--chunk-rows", "64", "--workers", "2"]
    with subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    ) as proc:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "vocab: ..." once the words are counted: encoding runs
        assert first.startswith("vocab:"), first
        assert target.exists()
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in rest
    assert not target.exists() and not Path(f"{target}.lock").exists()
    with pytest.raises(ProcessLookupError):  # nobody is left in its process group
        os.killpg(proc.pid, 0)


def test_forkserver_workers_see_the_parents_environment_as_it_is_now(monkeypatch):
    """A forkserver's children inherit the environment the server started with: credentials
    or AWS_ENDPOINT_URL set after it started (a test's, or a user's own os.environ) reached no
    worker (an s3:// ingest then failed with botocore's NoCredentialsError)."""
    monkeypatch.setattr(parallel, "_start_method", lambda: "forkserver")
    monkeypatch.delenv("TEXTVAE_TEST_SECRET", raising=False)
    seen: list[str | None] = []
    with parallel.Pool(1, {}) as pool:  # starts the fork server without the variable
        pool.map(os.getenv, iter([("TEXTVAE_TEST_SECRET",)]), seen.append)
    monkeypatch.setenv("TEXTVAE_TEST_SECRET", "set later")
    with parallel.Pool(2, {}) as pool:
        pool.map(os.getenv, iter([("TEXTVAE_TEST_SECRET",)] * 4), seen.append)
    assert seen == [None, "set later", "set later", "set later", "set later"]
