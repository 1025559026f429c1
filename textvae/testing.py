"""Helpers for tests (ours and yours): small labelled corpora written to disk.

Public so that projects reusing textvae can build the same small fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["TINY_TRAIN_ARGS", "WORDS", "random_reviews", "write_jsonl"]

WORDS = tuple("the a film movie good bad great awful plot actor scene love hate boring fun".split())

#: ``textvae-train`` flags for a model that trains in seconds on a store of ``WORDS`` (vocab
#: 12, max_len 16), quiet, with 2 batch-building threads.
TINY_TRAIN_ARGS = (
    *("--vocab", "12", "--max-len", "16"),
    *("--embedding-dim", "8", "--hidden", "8", "--dense", "8", "--latent", "4"),
    *("--batch-size", "8", "--verbose", "0", "--workers", "2"),
)


def write_jsonl(path: str | Path, reviews: list[tuple[str, int]]) -> Path:
    """Write ``(text, label)`` pairs as a JSONL file of ``{"text", "label"}`` records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for text, label in reviews:
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


def random_reviews(rng: np.random.Generator, n: int, max_words: int = 20) -> list[tuple[str, int]]:
    """``n`` random reviews of 1..max_words words from :data:`WORDS`, some with punctuation."""
    reviews = []
    for _ in range(n):
        k = int(rng.integers(1, max_words + 1))
        words = [str(w) for w in rng.choice(WORDS, size=k)]
        if rng.random() < 0.5:
            words.append("!")
        reviews.append((" ".join(words), int(rng.integers(0, 2))))
    return reviews
