"""Scores of generated text (NumPy only): does it end, does it loop, does it vary, is it words.

Each function takes what :func:`textvae.model.decoding.generate` returns, or the texts cut from
it by :func:`generated_texts`, and is small enough to check by hand:

- :func:`ended_share`: the share of rows that end (choose the pad id) before ``max_len``;
- :func:`mean_length`: mean ids per text, the end not counted;
- :func:`rep4`: per text, the share of its 4-grams that already occurred earlier in the same
  text (a loop scores near 1, a text without a repeated phrase 0), averaged over texts;
- :func:`distinct2`: distinct bigrams / all bigrams, over all texts together (low: the texts
  say the same things);
- :func:`oov_share`: the share of generated ids that are ``<oov>``.

:func:`generation_scores` gathers them under one prefix for ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textvae.data.vocab import OOV_ID, PAD_ID

__all__ = [
    "distinct2",
    "ended_share",
    "generated_texts",
    "generation_scores",
    "mean_length",
    "oov_share",
    "rep4",
]


def generated_texts(rows: np.ndarray, pad_id: int = PAD_ID) -> list[np.ndarray]:
    """The text of each generated row: the ids after the start id, up to its end (the first pad
    id) or the row's last id.

    Parameters
    ----------
    rows
        ``(n, length)`` ids as :func:`~textvae.model.decoding.generate` returns them.
    pad_id
        The id that ends a row.
    """
    texts = []
    for row in np.asarray(rows):
        body = row[1:]
        ends = np.flatnonzero(body == pad_id)
        texts.append(body[: ends[0]] if len(ends) else body)
    return texts


def ended_share(rows: np.ndarray, pad_id: int = PAD_ID) -> float | None:
    """The share of generated rows that end (hold the pad id after the start id); ``None``
    for no rows. A row generated to ``max_len`` ids without an end has not ended."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return None
    return float(np.mean((rows[:, 1:] == pad_id).any(axis=1)))


def mean_length(texts: Sequence[Sequence[int]]) -> float | None:
    """Mean ids per text (the end not counted); ``None`` for no texts."""
    return float(np.mean([len(t) for t in texts])) if len(texts) else None


def _ngrams(text: Sequence[int], n: int) -> list[tuple[int, ...]]:
    ids = [int(i) for i in text]
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def rep4(texts: Sequence[Sequence[int]]) -> float | None:
    """Mean over texts of the share of a text's 4-grams that already occurred earlier in it.

    ``[5, 6, 7, 8, 5, 6, 7, 8]`` has five 4-grams, of which the last (``5 6 7 8`` again) is a
    repeat: 0.2. Texts shorter than four ids have no 4-gram and are left out; ``None`` when
    none has one.
    """
    shares = []
    for text in texts:
        grams = _ngrams(text, 4)
        if not grams:
            continue
        seen: set[tuple[int, ...]] = set()
        repeats = 0
        for gram in grams:
            repeats += gram in seen
            seen.add(gram)
        shares.append(repeats / len(grams))
    return float(np.mean(shares)) if shares else None


def distinct2(texts: Sequence[Sequence[int]]) -> float | None:
    """Distinct bigrams over all texts divided by all their bigrams (bigrams do not cross
    texts); ``None`` when no text has two ids."""
    grams = [gram for text in texts for gram in _ngrams(text, 2)]
    return len(set(grams)) / len(grams) if grams else None


def oov_share(texts: Sequence[Sequence[int]], oov_id: int = OOV_ID) -> float | None:
    """The share of all ids in ``texts`` that are ``oov_id``; ``None`` when there are none."""
    total = sum(len(t) for t in texts)
    if total == 0:
        return None
    return sum(int(np.count_nonzero(np.asarray(t) == oov_id)) for t in texts) / total


def generation_scores(rows: np.ndarray, prefix: str) -> dict[str, Any]:
    """Every score of this module for generated ``rows``, keyed ``{prefix}_{score}``:
    ``ended``, ``mean_length``, ``rep4``, ``distinct2``, ``oov_share``."""
    texts = generated_texts(rows)
    return {
        f"{prefix}_ended": ended_share(rows),
        f"{prefix}_mean_length": mean_length(texts),
        f"{prefix}_rep4": rep4(texts),
        f"{prefix}_distinct2": distinct2(texts),
        f"{prefix}_oov_share": oov_share(texts),
    }
