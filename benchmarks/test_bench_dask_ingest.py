"""The ingest's engines side by side: one process, textvae's process pool (2 workers) and Dask's
local processes (2 workers, ``scheduler="local"``), the same corpus in one run.

Two Dask cases: ``dask local`` is what ``textvae-ingest --scheduler local`` costs, the start of
a ``LocalCluster`` (2 spawned interpreters importing textvae) included; ``dask cluster`` runs on
a cluster started once beforehand (``--scheduler ADDRESS``), so the difference between the two
is the start and the rest is Dask's per-task cost. The default corpus is small and synthetic
(2,000 + 500 random reviews of up to 230 words), a smoke test of seconds, so CI runs it as a
plain test under ``--benchmark-disable``; ``--full`` ingests the real IMDB corpus (vocab 20,000,
max_len 300). Two rounds each, the fastest counts (the machine is shared; see
``test_bench_ingest.py``); ``extra_info`` keeps reviews/s and each round's seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from synthetic import IMDB_DIR

from textvae.data import StoreSpec, build_store
from textvae.data.discover import open_corpus
from textvae.testing import random_reviews

distributed = pytest.importorskip("distributed")  # the test extra installs it

GROUP = "ingest engines"
#: Reviews of the small synthetic corpus (train, test).
SMALL = {"train": 2000, "test": 500}
#: case -> (workers, scheduler); "cluster" is the address of the module's running cluster.
ENGINES = {
    "one process": (1, None),
    "pool": (2, None),
    "dask local": (2, "local"),
    "dask cluster": (None, "cluster"),
}


@pytest.fixture(scope="module")
def corpus_source(full: bool, tmp_path_factory) -> Path:
    if full:
        if IMDB_DIR is None:
            pytest.skip("no IMDB corpus found ($TEXTVAE_IMDB, shared/data/imdb)")
        return IMDB_DIR
    root = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(0)
    for split, n in SMALL.items():
        lines = [
            json.dumps({"text": t, "label": y}) + "\n"
            for t, y in random_reviews(rng, n, max_words=230)
        ]
        (root / f"small_{split}.jsonl.gz").write_bytes(gzip.compress("".join(lines).encode()))
    return root


@contextlib.contextmanager
def _cluster(scheduler: str | None) -> Iterator[str | None]:
    """The scheduler to pass: a LocalCluster of 2 processes started here for ``"cluster"``."""
    if scheduler != "cluster":
        yield scheduler
        return
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("engine", list(ENGINES))
def test_ingest_engine(benchmark, corpus_source, tmp_path, full, engine):
    benchmark.group = GROUP
    workers, scheduler = ENGINES[engine]
    corpus = open_corpus(corpus_source)
    spec = StoreSpec(vocab_size=20000 if full else 5000, max_len=300)
    seconds: list[float] = []
    with _cluster(scheduler) as address:

        def build():
            start = time.perf_counter()
            store = build_store(
                tmp_path / "s.zarr",
                corpus,
                spec,
                overwrite=True,
                workers=workers,
                scheduler=address,
            )
            seconds.append(time.perf_counter() - start)
            return store

        store = benchmark.pedantic(build, rounds=2, iterations=1)
    expected = {"train": 25000, "test": 25000} if full else SMALL
    assert {s: store.num_rows(s) for s in store.splits} == expected
    rows = sum(expected.values())
    benchmark.extra_info.update(
        engine=engine,
        corpus="IMDB" if full else "small",
        reviews=rows,
        seconds=round(min(seconds), 3),
        reviews_per_s=round(rows / min(seconds), 1),
        rounds_seconds=[round(x, 3) for x in seconds],
    )
