"""Sharded against unsharded stores: the read cost of a 64-row random batch, locally and on a
local S3 server (moto), and the objects per array.

One benchmark group per location (local disk; moto; local disk with :data:`LATENCY_S` added
to every request, as object storage has), two cases read as ratios: the same rows of the same
synthetic store written with every chunk its own object (``chunks``) and with zarr v3's
sharding codec (``shards``), each read as a batch of 64 random rows (a chunk decoded per
distinct chunk touched). A sharded read first fetches the index of each shard touched (one
more request per shard), then each chunk touched by byte range (zarr 3.1 fetches the chunks of
one shard one after the other; a read of every chunk of a shard fetches it whole).
``extra_info`` holds the objects of ``train/tokens`` and the chunks a batch touches. The
default size (65,536 rows of 50 ids, chunks of 128, shards of 16,384) runs in seconds as a
plain test (``--benchmark-disable``); ``--full`` is 262,144 rows of 300 ids in chunks of 1,024
and shards of 131,072 (the automatic sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from synthetic import SyntheticCorpus
from zarr.storage import LocalStore, WrapperStore

from textvae.data import StoreSpec, TokenStore, build_store
from textvae.data.chunks import checking

BATCH = 64
SPLIT = "train"
#: The first-byte latency of a request to object storage in the same region, roughly; moto on
#: this machine answers in about a millisecond, so its figures hide what a round trip costs.
LATENCY_S = 0.02
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _size(full: bool) -> dict[str, int]:
    # 128 chunks a shard in both, as the automatic shard size has at 1,024 rows a chunk: a
    # batch of 64 random rows touches a few chunks of each shard, never a whole shard.
    if full:
        return {"rows": 262_144, "vocab": 20_000, "max_len": 300, "chunk": 1024, "shard": 131_072}
    return {"rows": 65_536, "vocab": 2_000, "max_len": 50, "chunk": 128, "shard": 16_384}


@contextlib.contextmanager
def _moto(log: Path) -> Iterator[str]:
    """``python -m moto.server`` on a free local port (nothing leaves the machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAKE_CREDENTIALS},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Storage options of a fresh bucket on a local moto server."""
    import s3fs

    with _moto(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir(bucket)
        yield {"bucket": bucket, **options}


class LatencyStore(WrapperStore):
    """A local store whose every ``get`` first waits :data:`LATENCY_S` (concurrent gets wait
    side by side, as requests to object storage do)."""

    def _with_store(self, store):
        return type(self)(store)

    async def get(self, key, prototype, byte_range=None):
        await asyncio.sleep(LATENCY_S)
        return await self._store.get(key, prototype, byte_range)


def _with_latency(store: TokenStore) -> TokenStore:
    group = zarr.open_group(store=LatencyStore(LocalStore(store.path, read_only=True)), mode="r")
    return TokenStore(checking(group), store.path)


@pytest.fixture(scope="module")
def stores(full, tmp_path_factory, s3) -> dict[tuple[str, str], TokenStore]:
    """(location, layout) -> the same synthetic store, unsharded and sharded, local and S3."""
    size = _size(full)
    corpus = SyntheticCorpus(size["rows"], vocab_size=size["vocab"], max_len=size["max_len"])
    options = {k: v for k, v in s3.items() if k != "bucket"}
    root = tmp_path_factory.mktemp("shards")
    built = {}
    for layout, shard_rows in (("chunks", 0), ("shards", size["shard"])):
        spec = StoreSpec(
            vocab_size=size["vocab"],
            max_len=size["max_len"],
            chunk_rows=size["chunk"],
            shard_rows=shard_rows,
        )
        built["local", layout] = build_store(root / f"{layout}.zarr", corpus, spec)
        url = f"s3://{s3['bucket']}/{layout}.zarr"
        built["s3", layout] = build_store(url, corpus, spec, storage_options=options)
        built["latency", layout] = _with_latency(built["local", layout])
    return built


@pytest.mark.parametrize("layout", ["chunks", "shards"])
@pytest.mark.parametrize("location", ["local", "s3", "latency"])
def test_read_shuffled_batch(benchmark, stores, location, layout, full, rng):
    store = stores[location, layout]
    reference = stores["local", "chunks"]
    n = store.num_rows(SPLIT)
    benchmark.group = (
        f"{location}: read {BATCH} random rows of {n}x{store.max_len} "
        f"(chunks of {store.chunk_rows(SPLIT)}, shards of {_size(full)['shard']})"
    )
    batches = itertools.cycle([rng.choice(n, BATCH, replace=False) for _ in range(16)])
    last = {}

    def read():
        rows = last["rows"] = next(batches)
        return store.read(SPLIT, rows)

    rounds = (50 if full else 10) if location == "local" else (20 if full else 5)
    result = benchmark.pedantic(read, rounds=rounds, warmup_rounds=1, iterations=1)
    rows = last["rows"]
    np.testing.assert_array_equal(result, reference.read(SPLIT, rows))
    keys, _ = store.chunk_keys(SPLIT, "tokens")
    objects = len([k for k in keys if "/c/" in k])
    expected = -(-n // (store.shard_rows or store.chunk_rows(SPLIT)))
    assert objects == expected
    benchmark.extra_info["objects"] = objects
    benchmark.extra_info["chunks_touched"] = len(np.unique(rows // store.chunk_rows(SPLIT)))
