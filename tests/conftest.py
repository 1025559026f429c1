"""Fixtures shared by the test files: small corpora and stores the tests make themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

WORDS = "the a film movie good bad great awful plot actor scene love hate boring fun".split()


def write_jsonl(path: Path, reviews: list[tuple[str, int]]) -> Path:
    """Write ``(text, label)`` pairs as a JSONL file of ``{"text", "label"}`` records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for text, label in reviews:
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


def random_reviews(rng: np.random.Generator, n: int, max_words: int = 20) -> list[tuple[str, int]]:
    """``n`` random reviews of 1..max_words words from a small word list, with punctuation."""
    reviews = []
    for _ in range(n):
        k = int(rng.integers(1, max_words + 1))
        words = list(rng.choice(WORDS, size=k))
        if rng.random() < 0.5:
            words.append("!")
        reviews.append((" ".join(words), int(rng.integers(0, 2))))
    return reviews


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
    from textvae.corpus import open_corpus
    from textvae.store import build_store

    return build_store(
        tmp_path / "small.zarr", open_corpus(corpus_dir), vocab_size=12, max_len=16, chunk_rows=8
    )
