"""Corpora that several files of tests/data share (tests/conftest.py has the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from textvae.testing import random_reviews, write_jsonl


@pytest.fixture
def corpus(tmp_path, rng) -> Path:
    """37 train and 11 test reviews (odd sizes: partial chunks and batches)."""
    root = tmp_path / "corpus"
    write_jsonl(root / "small_train.jsonl", random_reviews(rng, 37))
    write_jsonl(root / "small_test.jsonl", random_reviews(rng, 11))
    return root


@pytest.fixture
def wordy_corpus(tmp_path, rng) -> Path:
    """Reviews of 60 words drawn from 500: chunks of 128 rows compress to about 9 KB."""
    words = [f"w{i}" for i in range(500)]

    def reviews(n: int) -> list[tuple[str, int]]:
        return [(" ".join(rng.choice(words, 60)), int(rng.integers(0, 2))) for _ in range(n)]

    root = tmp_path / "wordy"
    write_jsonl(root / "w_train.jsonl", reviews(300))
    write_jsonl(root / "w_test.jsonl", reviews(20))
    return root
