"""Parallel ingest against one process: the same corpus built with 1 and 2 workers in one run.

``--full`` ingests the real IMDB corpus (50,000 reviews, vocab 20,000, max_len 300), two rounds
each (about 8 s a round with one worker on a quiet machine here); the fastest round counts, as
this VM's speed drifts with its host's load even when no local process competes. The default
is a small JSONL.gz corpus (the first 2,000 + 500 IMDB reviews, or random ones where IMDB is
missing), a smoke test of a few seconds. The report (``benchmarks/report.py``) puts the cases
side by side with their ratio; ``extra_info`` keeps reviews/s, the load average when each build
started and the cores' time that other processes took during the build (the machine is shared:
compare runs where that is near 0).
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import IMDB_DIR

from textvae.data import StoreSpec, build_store
from textvae.data.discover import open_corpus
from textvae.testing import random_reviews

GROUP = "ingest workers"
#: Reviews of the small corpus (train, test): a few seconds in all.
SMALL = {"train": 2000, "test": 500}


def _busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _small_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in SMALL.items():
        if IMDB_DIR is not None:
            reviews = list(itertools.islice(open_corpus(IMDB_DIR).reviews(split), n))
        else:
            reviews = random_reviews(np.random.default_rng(0), n, max_words=230)
        lines = [json.dumps({"text": t, "label": y}) + "\n" for t, y in reviews]
        (root / f"small_{split}.jsonl.gz").write_bytes(gzip.compress("".join(lines).encode()))
    return root


@pytest.fixture(scope="module")
def corpus_source(full: bool, tmp_path_factory) -> Path:
    if not full:
        return _small_corpus(tmp_path_factory.mktemp("ingest") / "small")
    if IMDB_DIR is None:
        pytest.skip("no IMDB corpus found ($TEXTVAE_IMDB, shared/data/imdb, ../shared/data/imdb)")
    return IMDB_DIR


@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_workers(benchmark, corpus_source, tmp_path, full, workers):
    benchmark.group = GROUP
    corpus = open_corpus(corpus_source)
    vocab_size, max_len = (20000, 300) if full else (5000, 300)
    seconds, loads, others, cpu = [], [], [], []

    def build():
        loads.append(os.getloadavg()[0])
        busy, own = _busy_seconds(), _own_seconds()
        start = time.perf_counter()
        store = build_store(
            tmp_path / "s.zarr",
            corpus,
            spec=StoreSpec(vocab_size=vocab_size, max_len=max_len),
            overwrite=True,
            workers=workers,
        )
        seconds.append(time.perf_counter() - start)
        cpu.append(_own_seconds() - own)
        if busy is not None:
            # other processes' CPU time during the build, in cores (0: we had the machine)
            other = (_busy_seconds() - busy) - (_own_seconds() - own)
            others.append(max(other, 0.0) / seconds[-1])
        return store

    store = benchmark.pedantic(build, rounds=2, iterations=1)
    rows = sum(store.num_rows(split) for split in store.splits)
    expected = {"train": 25000, "test": 25000} if full else SMALL
    assert {s: store.num_rows(s) for s in store.splits} == expected
    benchmark.extra_info.update(
        workers=workers,
        corpus="IMDB" if full else "small",
        reviews=rows,
        seconds=round(min(seconds), 3),
        reviews_per_s=round(rows / min(seconds), 1),
        load_average_1min=round(max(loads), 2),
        other_processes_cores=round(max(others), 2) if others else None,
        rounds_seconds=[round(x, 3) for x in seconds],
        # CPU seconds of this process and its workers: 2 x cpu(1 worker) / cpu(2 workers) is
        # the speedup two idle cores would give
        rounds_cpu_seconds=[round(x, 3) for x in cpu],
    )
