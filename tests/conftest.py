"""Fixtures shared by the test files: small corpora and stores the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from textvae.testing import random_reviews, write_jsonl

# CI machines are small and busy: a slow example is not a failure.
settings.register_profile("textvae", deadline=None)
settings.load_profile("textvae")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def corpus_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A JSONL corpus folder: 37 train and 11 test reviews (odd sizes: partial chunks/batches)."""
    root = tmp_path / "corpus"
    write_jsonl(root / "small_train.jsonl", random_reviews(rng, 37))
    write_jsonl(root / "small_test.jsonl", random_reviews(rng, 11))
    return root


@pytest.fixture
def small_store(tmp_path: Path, corpus_dir: Path):
    """A complete store built from ``corpus_dir``: vocab 12, max_len 16, chunks of 8 rows."""
    from textvae.data import StoreSpec, build_store, open_corpus

    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    return build_store(tmp_path / "small.zarr", open_corpus(corpus_dir), spec)
