"""What the fuzz draws: hypothesis settings and the strategies more than one input kind uses.

Every test is derandomized (the same examples on every run) and small; set
``TEXTVAE_FUZZ_EXAMPLES=N`` to draw N examples per test instead.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(default: int) -> Callable:
    """hypothesis settings of one fuzz test: reproducible, no deadline, ``default`` examples."""
    return settings(
        max_examples=int(os.environ.get("TEXTVAE_FUZZ_EXAMPLES", default)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


# Numbers as a user types them: small, negative, huge, and things that are not numbers. The
# huge ones start at 2**31, past every limit, so that none is accepted and then allocated: a
# `--vocab` of 2**20 is valid, and would only make an example slow.
HUGE = st.one_of(st.integers(2**31, 2**70), st.integers(-(2**70), -4))
INT_TEXT = st.one_of(
    st.integers(-3, 40).map(str),
    HUGE.map(str),
    st.sampled_from(["", "nan", "inf", "1e3", "0x10", "3.5", " 7 ", "٣", "1_0", "-0", "+5"]),
)
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "-inf", "1e309", "-0.0", "0", "1", "0.5", "abc", "1,5"]),
)
WORD = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` three times in four: an example with several flags keeps a fair chance of
    getting past the parser to the work behind it."""
    return st.one_of(valid, valid, valid, odd)


def cli_flags(options: dict[str, st.SearchStrategy]) -> st.SearchStrategy[list[str]]:
    """A random subset of ``options`` as ``--flag value`` pairs (a None value: the bare flag)."""
    pairs = st.lists(st.sampled_from(sorted(options)), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(*(options[n] for n in names)).map(
            lambda values: [
                token
                for n, v in zip(names, values, strict=True)
                for token in ([n] if v is None else [n, v])
            ]
        )
    )
    return pairs


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an ``.npz`` file holding ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def ragged(seqs: list[list[int]]) -> np.ndarray:
    """An object array of lists, as Keras' ``imdb.npz`` stores its reviews."""
    out = np.empty(len(seqs), dtype=object)
    for i, seq in enumerate(seqs):
        out[i] = seq
    return out
