"""Sharded stores (zarr v3's sharding codec): the same rows as unsharded, one object per shard,
checksums per chunk inside the shard, damage named with its rows, and the automatic choice.

Damage is made as a disk or a copy makes it: bytes flipped inside one chunk of a shard (found
through the shard's index), a shard file deleted, a chunk's entry dropped from the index.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import google_crc32c
import numpy as np
import pytest

from textvae.cli import ingest_config_from_args
from textvae.data import StoreSpec, TokenStore, build_store, format, open_corpus, verify_store
from textvae.data.format import SHARD_ABOVE_ROWS, auto_shard_rows, shard_rows_for
from textvae.errors import InvalidArgumentError, StoreCorruptError
from textvae.testing import make_store

CHUNK, SHARD = 8, 24  # three chunks a shard; 45 train rows: two shards, the last one partial
ROWS = {"train": 45, "test": 13}


@pytest.fixture
def sharded(tmp_path) -> TokenStore:
    return make_store(tmp_path / "sharded.zarr", rows=ROWS, chunk_rows=CHUNK, shard_rows=SHARD)


@pytest.fixture
def plain(tmp_path) -> TokenStore:
    return make_store(tmp_path / "plain.zarr", rows=ROWS, chunk_rows=CHUNK)


def _objects(store: TokenStore, split: str, name: str) -> list[str]:
    folder = Path(store.path) / split / name / "c"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _shard_index(path: Path, chunks: int) -> np.ndarray:
    """(offset, length) of each chunk of a shard file, from its index (at the end, crc32c last)."""
    data = path.read_bytes()
    return np.frombuffer(data[-(16 * chunks + 4) : -4], dtype="<u8").reshape(-1, 2)


def test_metadata_records_the_rows_per_shard(sharded, plain):
    assert sharded.attrs["shard_rows"] == sharded.shard_rows == SHARD
    assert plain.attrs["shard_rows"] == plain.shard_rows == 0
    assert sharded.chunk_rows("train") == CHUNK  # the unit of reading stays the chunk


def test_sharded_reads_are_identical_to_unsharded(sharded, plain, rng):
    for split, n in ROWS.items():
        np.testing.assert_array_equal(
            sharded.read(split, slice(None)), plain.read(split, slice(None))
        )
        np.testing.assert_array_equal(sharded.labels(split), plain.labels(split))
        np.testing.assert_array_equal(sharded.lengths(split), plain.lengths(split))
        rows = rng.integers(0, n, size=17)  # any order, repeats
        np.testing.assert_array_equal(sharded.read(split, rows), plain.read(split, rows))
        np.testing.assert_array_equal(
            sharded.read(split, slice(5, 30)), plain.read(split, slice(5, 30))
        )
    assert sharded.token_strings == plain.token_strings


def test_one_object_per_shard(sharded, plain):
    # tokens: ceil(45 / 24) shards against ceil(45 / 8) chunks; labels and lengths are sharded
    # at 16 chunks of rows per chunk as well, one object each here.
    assert _objects(sharded, "train", "tokens") == ["0/0", "1/0"]
    assert len(_objects(plain, "train", "tokens")) == 6
    assert _objects(sharded, "train", "labels") == ["0"] == _objects(sharded, "train", "lengths")
    assert _objects(sharded, "test", "tokens") == ["0/0"]


def test_every_chunk_inside_a_shard_has_its_checksum(sharded):
    codecs = sharded.zarr_array("train", "tokens").metadata.codecs
    assert [type(c).__name__ for c in codecs] == ["ShardingCodec"]
    inner = [type(c).__name__ for c in codecs[0].codecs]
    assert inner == ["BytesCodec", "ZstdCodec", "Crc32cCodec"]
    assert verify_store(sharded.path).ok


def test_verify_names_a_damaged_chunk_inside_a_shard(sharded):
    shard = Path(sharded.path) / "train" / "tokens" / "c" / "1" / "0"  # rows 24-44
    offset, length = _shard_index(shard, SHARD // CHUNK)[1]  # its second chunk: rows 32-39
    data = bytearray(shard.read_bytes())
    for i in range(int(offset) + 4, int(offset + length) - 4):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))

    report = verify_store(sharded.path)
    assert [str(d) for d in report.damaged] == ["train/tokens rows 32-39: checksum mismatch"]
    reopened = TokenStore.open(sharded.path)
    np.testing.assert_array_equal(
        reopened.read("train", slice(24, 32)), sharded.read("train", slice(24, 32))
    )
    with pytest.raises(StoreCorruptError, match=r"train/tokens holding rows 32-39 is damaged"):
        reopened.read("train", [3, 35])


def test_a_missing_shard_is_named_by_reads_and_verify(sharded):
    (Path(sharded.path) / "train" / "tokens" / "c" / "1" / "0").unlink()
    store = TokenStore.open(sharded.path)
    with pytest.raises(
        StoreCorruptError, match=r"holding rows 24-44 is damaged \(its file .*c/1/0 is missing"
    ):
        store.read("train", [40])
    damaged = [str(d) for d in verify_store(sharded.path).damaged]
    assert damaged == [
        f"train/tokens rows {a}-{b}: its file train/tokens/c/1/0 is missing"
        for a, b in ((24, 31), (32, 39), (40, 44))
    ]


def test_verify_finds_a_chunk_missing_from_its_shards_index(sharded):
    # A shard whose index lost a chunk's entry (with a valid index checksum) reads that chunk
    # as the fill value, silently: verify reports it.
    shard = Path(sharded.path) / "train" / "tokens" / "c" / "0" / "0"
    chunks = SHARD // CHUNK
    data = shard.read_bytes()
    index = _shard_index(shard, chunks).copy()
    index[2] = 2**64 - 1
    raw = index.astype("<u8").tobytes()
    new_index = raw + struct.pack("<I", google_crc32c.value(raw))
    shard.write_bytes(data[: -(16 * chunks + 4)] + new_index)
    damaged = [str(d) for d in verify_store(sharded.path).damaged]
    assert damaged == [
        "train/tokens rows 16-23: it is missing from the index of its shard train/tokens/c/0/0"
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard_rows": 12}, r"`shard_rows` must be a multiple of `chunk_rows` \(8\)"),
        ({"shard_rows": -8}, r"`shard_rows` must be a non-negative integer or None"),
        ({"shard_rows": True}, "shard_rows"),
        ({"shard_rows": 2.5}, "shard_rows"),
    ],
    ids=["not-whole-chunks", "negative", "bool", "float"],
)
def test_shard_rows_is_validated(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        StoreSpec(chunk_rows=8, **kwargs)


def test_automatic_shards_only_above_the_threshold():
    spec = StoreSpec(max_len=300)
    assert shard_rows_for(spec, None) == 0  # size unknown: no shards
    assert shard_rows_for(spec, SHARD_ABOVE_ROWS) == 0
    assert shard_rows_for(spec, SHARD_ABOVE_ROWS + 1) == 128 * 1024
    assert shard_rows_for(dataclasses.replace(spec, shard_rows=0), 10**9) == 0  # 0: never
    assert shard_rows_for(dataclasses.replace(spec, shard_rows=2048), 10) == 2048
    # whole chunks, at most 256 MiB of raw ids, at least one chunk
    assert auto_shard_rows(1000, 300, np.dtype(np.uint16)) == 132 * 1000  # rounded up
    assert auto_shard_rows(1024, 2000, np.dtype(np.uint32)) == 32 * 1024  # 8 MB chunks
    assert auto_shard_rows(4096, 30_000, np.dtype(np.uint32)) == 4096


def test_a_build_shards_automatically_once_the_train_split_is_large(tmp_path, corpus, monkeypatch):
    # The threshold lowered to 30 rows: the corpus's 37 training reviews, counted by the
    # vocabulary pass, pass it.
    monkeypatch.setattr(format, "SHARD_ABOVE_ROWS", 30)
    monkeypatch.setattr(format, "AUTO_SHARD_ROWS", 16)
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    store = build_store(tmp_path / "auto.zarr", open_corpus(corpus), spec)
    assert store.shard_rows == 16
    assert store.zarr_array("train", "tokens").shards == (16, 16)
    assert len(_objects(store, "train", "tokens")) == 3
    off = build_store(
        tmp_path / "off.zarr", open_corpus(corpus), dataclasses.replace(spec, shard_rows=0)
    )
    assert off.shard_rows == 0 and off.zarr_array("train", "tokens").shards is None
    np.testing.assert_array_equal(store.read("train", slice(None)), off.read("train", slice(None)))


def test_two_workers_write_the_same_sharded_bytes_as_one(tmp_path, corpus):
    # A worker's task is a whole shard: each object has one writer, byte for byte as one process.
    spec = StoreSpec(vocab_size=12, max_len=9, chunk_rows=2, shard_rows=6)
    one = build_store(tmp_path / "one.zarr", open_corpus(corpus), spec, workers=1)
    two = build_store(tmp_path / "two.zarr", open_corpus(corpus), spec, workers=2)

    def files(path: str) -> dict[str, bytes]:
        root = Path(path)
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(one.path) == files(two.path)
    assert len(_objects(one, "train", "tokens")) == 7  # ceil(37 / 6)


def test_the_ingest_flag(tmp_path):
    config = ingest_config_from_args(["src", str(tmp_path / "s.zarr"), "--shard-rows", "2048"])
    assert config.shard_rows == config.spec.shard_rows == 2048
    assert ingest_config_from_args(["src", str(tmp_path / "s.zarr")]).shard_rows is None
