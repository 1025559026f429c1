"""The store's format: StoreSpec, dtypes, codecs and the metadata rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from textvae.data import DEFAULT_CHUNK_ROWS, StoreSpec
from textvae.data.format import (
    FORMAT,
    MAX_CHUNK_BYTES,
    READ_FORMATS,
    TEXTVAE_IDS,
    array_codecs,
    compressors,
    label_dtype,
    metadata_problem,
    token_dtype,
)
from textvae.errors import InvalidArgumentError


def test_store_spec_defaults_and_fields():
    spec = StoreSpec()
    assert spec.to_dict() == {
        "vocab_size": 20000,
        "max_len": 300,
        "padding": "pre",
        "truncating": "pre",
        "chunk_rows": DEFAULT_CHUNK_ROWS,
        "shard_rows": None,
    }
    assert StoreSpec(**spec.to_dict()) == spec
    assert spec.token_dtype == np.uint16 and StoreSpec(70_000, 8).token_dtype == np.uint32
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_len = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"vocab_size": 3}, "`vocab_size` must be an integer >= 4"),
        ({"vocab_size": 2**24 + 1}, "`vocab_size` must be at most 16,777,216"),
        ({"vocab_size": "20000"}, "`vocab_size`"),
        ({"vocab_size": None}, "`vocab_size`"),
        ({"max_len": 0}, "`max_len` must be a positive integer. Received: max_len=0"),
        ({"max_len": 2.5}, "`max_len`"),
        ({"max_len": True}, "`max_len`"),
        ({"chunk_rows": 0}, "`chunk_rows` must be a positive integer"),
        ({"padding": "middle"}, "`padding` must be one of"),
        ({"truncating": None}, "`truncating` must be one of"),
        ({"chunk_rows": 2**20, "max_len": 2**10}, "at most 1,073,741,824 bytes"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_store_spec_is_validated_on_construction(fields, message):
    with pytest.raises(InvalidArgumentError, match=message):
        StoreSpec(**{"vocab_size": 12, "max_len": 8, **fields})


def test_largest_chunk_is_accepted():
    # uint16 ids: 2 bytes each, so this chunk is exactly MAX_CHUNK_BYTES.
    spec = StoreSpec(vocab_size=12, max_len=1024, chunk_rows=MAX_CHUNK_BYTES // 2048)
    assert spec.chunk_rows * spec.max_len * 2 == MAX_CHUNK_BYTES


def test_dtypes():
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    assert label_dtype(2) == np.int8 and label_dtype(127) == np.int8
    assert label_dtype(128) == np.int32


def test_new_stores_are_zstd_then_crc32c(small_store):
    assert [type(c).__name__ for c in compressors()] == ["ZstdCodec", "Crc32cCodec"]
    assert array_codecs(small_store.zarr_array("train", "tokens")) == ("zstd", "crc32c")
    assert small_store.format == FORMAT and FORMAT in READ_FORMATS


def _meta(**changes):
    meta = {
        "format": 2,
        "vocab_size": 12,
        "max_len": 8,
        **TEXTVAE_IDS,
        "padding": "pre",
        "truncating": "post",
        "splits": ["train", "test"],
        "num_classes": 2,
    }
    return {**meta, **changes}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"num_classes": None}, None),
        ({"format": 1, "num_classes": "ignored"}, None),
        ({"pad_id": 5, "start_id": None, "oov_id": None}, None),  # a store of a user's ids
        ({"pad_id": 12, "start_id": None, "oov_id": None}, "attribute pad_id=12 is not valid"),
        ({"start_id": 4}, "attribute start_id=4 is not valid"),
        ({"splits": ["train", "train"]}, "attribute splits="),
        ({"splits": ["a/b"]}, "attribute splits="),
        ({"max_len": 0}, "attribute max_len=0 is not valid"),
        ({"vocab_size": 3}, "attribute vocab_size=3 is not valid"),
        ({"num_classes": 1}, "attribute num_classes=1 is not valid"),
        ({"padding": "both"}, "attribute padding='both' is not valid"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_metadata_rules(changes, problem):
    found = metadata_problem(_meta(**changes))
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_missing_attribute_is_named():
    meta = _meta()
    del meta["truncating"]
    assert metadata_problem(meta) == "attribute 'truncating' is missing from the store's metadata"
    meta = _meta(format=1)
    del meta["num_classes"]  # format 1 never had it
    assert metadata_problem(meta) is None
