"""The scores of generated text against values worked out by hand on tiny id lists."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.data.vocab import OOV_ID, PAD_ID, START_ID
from textvae.model.generation_metrics import (
    distinct2,
    ended_share,
    generated_texts,
    generation_scores,
    mean_length,
    oov_share,
    rep4,
)

S, E = START_ID, PAD_ID
ROWS = np.array(
    [
        [S, 5, 6, 7, E, E, E, E],  # ends after 3 ids
        [S, 5, 6, 5, 6, 5, 6, 5],  # runs to max_len: a loop
        [S, E, E, E, E, E, E, E],  # ends at once: empty
        [S, 9, OOV_ID, 9, 8, E, E, E],  # ends after 4 ids, one <oov>
    ]
)


def test_generated_texts_stop_at_the_end():
    texts = generated_texts(ROWS)
    assert [t.tolist() for t in texts] == [[5, 6, 7], [5, 6, 5, 6, 5, 6, 5], [], [9, 2, 9, 8]]


def test_ended_share_counts_rows_with_an_end():
    assert ended_share(ROWS) == 3 / 4
    assert ended_share(ROWS[:0]) is None


def test_mean_length():
    assert mean_length(generated_texts(ROWS)) == (3 + 7 + 0 + 4) / 4
    assert mean_length([]) is None


@pytest.mark.parametrize(
    ("texts", "want"),
    [
        ([[5, 6, 7, 8, 5, 6, 7, 8]], 1 / 5),  # 5678 678 5 785 6 856 7 5678: the last repeats
        ([[5, 5, 5, 5, 5, 5]], 2 / 3),  # three 4-grams 5555, the 2nd and 3rd repeat
        ([[5, 6, 7, 8, 9]], 0.0),
        # a loop of period 2 over 7 ids: 4 4-grams 5656 6565 5656 6565, two repeat; and a text
        # shorter than 4 ids is left out of the mean
        ([[5, 6, 5, 6, 5, 6, 5], [5, 6, 7]], 2 / 4),
        ([[5, 6, 7, 8, 5, 6, 7, 8], [5, 6, 7, 8, 9]], (1 / 5 + 0) / 2),
        ([[5, 6], []], None),
    ],
)
def test_rep4_by_hand(texts, want):
    assert rep4(texts) == pytest.approx(want) if want is not None else rep4(texts) is None


@pytest.mark.parametrize(
    ("texts", "want"),
    [
        ([[5, 6, 7]], 2 / 2),
        ([[5, 6, 5, 6]], 2 / 3),  # 56 65 56
        ([[5, 6], [5, 6], [6, 5]], 2 / 3),  # across texts: 56 56 65
        ([[5, 6, 7], [7, 5]], 3 / 3),  # 56 67 | 75: no bigram across the texts' border
        ([[5], []], None),
    ],
)
def test_distinct2_by_hand(texts, want):
    assert distinct2(texts) == pytest.approx(want) if want is not None else distinct2(texts) is None


def test_oov_share_by_hand():
    assert oov_share([[5, OOV_ID], [OOV_ID, 6, 7, 8]]) == 2 / 6
    assert oov_share([[], []]) is None


def test_generation_scores_gathers_them_under_a_prefix():
    scores = generation_scores(ROWS, "prior")
    assert scores == {
        "prior_ended": 0.75,
        "prior_mean_length": 3.5,
        # 4-grams: 5656 6565 5656 6565 (2 of 4 repeat); 9 2 9 8 (one, no repeat)
        "prior_rep4": pytest.approx((2 / 4 + 0) / 2),
        # 56 67 | 56 65 56 65 56 65 | 92 29 98: 56 67 65 92 29 98 distinct of 11
        "prior_distinct2": pytest.approx(6 / 11),
        "prior_oov_share": pytest.approx(1 / 14),
    }
