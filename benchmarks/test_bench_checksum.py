"""What a chunk checksum costs on read: zstd alone, zstd + zarr's ``crc32c``, zstd's frame checksum.

The train split of the benchmark store (``--full``: IMDB at vocab 20,000 / max_len 300; else
the small synthetic store) is written again with each codec chain, then three reads are timed
per chain, each in its own group so the chains read as ratios:

- one whole chunk (the unit a checksum is verified on: one decompression);
- ``TokenStore.read`` of 64 rows drawn at random across the split (a decompression per touched
  chunk: the worst case for a checksum's share);
- ``OneHotSequence[i]`` with one-hot float32 targets, shuffled, over a whole epoch (what
  ``fit`` pays: chunks are decompressed once per window and cached).

The end-to-end differences are small beside the noise of a shared machine, so the primitives
are timed alone too, on one compressed chunk of tokens: zstd decoding without and with its
frame checksum (xxhash64 of the decompressed bytes), and crc32c of the compressed bytes.

The README's "Checksums" figures come from ``pytest benchmarks/test_bench_checksum.py --full``.
"""

from __future__ import annotations

import itertools

import google_crc32c
import numpy as np
import pytest
import zarr
from numcodecs import Zstd
from zarr.codecs import Crc32cCodec, ZstdCodec

from textvae.batching.sequence import OneHotSequence
from textvae.data import TokenStore
from textvae.data.format import ZSTD_LEVEL
from textvae.testing import assert_batch_matches_store

SPLIT = "train"
BATCH = 64
CODECS = {
    "zstd": [ZstdCodec(level=ZSTD_LEVEL)],
    "zstd+crc32c": [ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()],
    "zstd-frame-checksum": [ZstdCodec(level=ZSTD_LEVEL, checksum=True)],
}


def recoded_store(source: TokenStore, path, compressors) -> TokenStore:
    """``source``'s train split (tokens, labels, lengths) and vocabulary, written to ``path``
    with ``compressors`` on every array: a valid store that differs only in its codecs."""
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs["textvae"] = {**source.attrs, "splits": [SPLIT]}
    vocab = group.create_array(
        "vocab", shape=(source.vocab_size,), dtype=str, chunks=(source.vocab_size,)
    )
    vocab[:] = np.array(list(source.vocab), dtype=object)
    chunk = source.chunk_rows(SPLIT)
    for name, read in (
        ("tokens", source.read),
        ("labels", source.labels),
        ("lengths", source.lengths),
    ):
        data = read(SPLIT, slice(None))
        array = group.create_array(
            f"{SPLIT}/{name}",
            shape=data.shape,
            dtype=data.dtype,
            chunks=(chunk, *data.shape[1:]),
            compressors=compressors,
        )
        array[:] = data
    return TokenStore.open(path)


@pytest.fixture(scope="module", params=list(CODECS))
def coded(request, train_store, tmp_path_factory) -> TokenStore:
    """The benchmark store's train split written with one codec chain (the case's id)."""
    path = tmp_path_factory.mktemp("checksum") / f"{request.param}.zarr"
    return recoded_store(train_store, path, CODECS[request.param])


@pytest.fixture(scope="module")
def all_ids(train_store: TokenStore) -> np.ndarray:
    return train_store.read(SPLIT, slice(None))


def _title(store: TokenStore) -> str:
    n = store.num_rows(SPLIT)
    return f"{n}x{store.max_len} vocab {store.vocab_size}, chunks of {store.chunk_rows(SPLIT)}"


def test_read_one_chunk(benchmark, coded, all_ids, full):
    store = coded
    benchmark.group = f"checksum: one chunk of {_title(store)}"
    c = store.chunk_rows(SPLIT)
    chunks = itertools.cycle(range(store.num_rows(SPLIT) // c))
    last = {}

    def read():
        k = last["k"] = next(chunks)
        return store.read(SPLIT, slice(k * c, (k + 1) * c))

    result = benchmark.pedantic(read, rounds=50 if full else 5, warmup_rounds=2, iterations=1)
    k = last["k"]
    np.testing.assert_array_equal(result, all_ids[k * c : (k + 1) * c])


def test_read_random_rows(benchmark, coded, all_ids, full):
    store = coded
    benchmark.group = f"checksum: store.read of {BATCH} random rows of {_title(store)}"
    n = store.num_rows(SPLIT)
    rng = np.random.default_rng(0)  # the same row sets for every codec
    batches = itertools.cycle([rng.choice(n, BATCH, replace=False) for _ in range(64)])
    last = {}

    def read():
        rows = last["rows"] = next(batches)
        return store.read(SPLIT, rows)

    result = benchmark.pedantic(read, rounds=50 if full else 5, warmup_rounds=2, iterations=1)
    benchmark.extra_info["chunks_touched"] = len(np.unique(last["rows"] // store.chunk_rows(SPLIT)))
    np.testing.assert_array_equal(result, all_ids[last["rows"]])


def test_sequence_item_onehot_float32(benchmark, coded, full):
    store = coded
    benchmark.group = f"checksum: seq[i] one-hot float32, batch {BATCH}, {_title(store)}"
    seq = OneHotSequence(store, SPLIT, BATCH, targets="onehot", dtype="float32", seed=0)
    indices = itertools.cycle(range(len(seq)))
    last = {}

    def getitem():
        i = last["i"] = next(indices)
        batch = last["batch"] = seq[i]  # held while the next is made, as fit does
        return batch

    seq[0]  # compile, open, plan; the timed rounds then cover one whole epoch
    rounds = len(seq) if full else 5
    batch = benchmark.pedantic(getitem, rounds=rounds, warmup_rounds=2, iterations=1)
    assert_batch_matches_store(seq, batch, seq.batch_rows(last["i"]), positions=(0, -1))


PRIMITIVES = ["zstd decode", "zstd decode + frame checksum", "crc32c of the compressed chunk"]


@pytest.mark.parametrize("primitive", PRIMITIVES)
def test_checksum_primitive(benchmark, train_store, all_ids, primitive):
    c = train_store.chunk_rows(SPLIT)
    raw = np.ascontiguousarray(all_ids[:c])
    benchmark.group = f"checksum primitives on one chunk of {raw.shape} {raw.dtype}"
    checked = primitive == "zstd decode + frame checksum"
    codec = Zstd(level=ZSTD_LEVEL, checksum=checked)
    encoded = codec.encode(raw)
    if primitive == "crc32c of the compressed chunk":
        compressed = np.frombuffer(encoded, dtype=np.uint8)
        expected = google_crc32c.value(compressed)
        result = benchmark(google_crc32c.value, compressed)
        assert result == expected and 0 <= result < 2**32
        benchmark.extra_info["bytes"] = compressed.size
        return
    decoded = benchmark(codec.decode, encoded)
    np.testing.assert_array_equal(np.frombuffer(decoded, dtype=raw.dtype).reshape(raw.shape), raw)
    benchmark.extra_info["bytes"] = len(encoded)
