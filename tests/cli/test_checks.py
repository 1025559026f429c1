"""textvae._checks: one wording for every argument check, and the validated value returned."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textvae._checks import (
    int_at_least,
    int_in_range,
    non_negative,
    one_of,
    positive_int,
    positive_number,
)


@pytest.mark.parametrize("value", [1, 7, np.int32(3)], ids=["one", "seven", "numpy"])
def test_positive_int_returns_a_python_int(value):
    result = positive_int("n", value)
    assert result == value and type(result) is int


@pytest.mark.parametrize(
    ("value", "received"),
    [(0, "0"), (-3, "-3"), (2.0, "2.0"), (True, "True"), ("4", "'4'"), (None, "None")],
    ids=["zero", "negative", "float", "bool", "str", "none"],
)
def test_positive_int_message(value, received):
    with pytest.raises(ValueError) as info:
        positive_int("batch_size", value)
    assert str(info.value) == (
        f"`batch_size` must be a positive integer. Received: batch_size={received}"
    )


def test_allow_none():
    assert positive_int("rows", None, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^`rows` must be a positive integer or None\. "):
        positive_int("rows", 0, allow_none=True)


def test_int_at_least_wording():
    assert int_at_least("pool_size", 0, 0) == 0
    with pytest.raises(ValueError, match=r"^`k` must be a non-negative integer\. Received: k=-1$"):
        int_at_least("k", -1, 0)
    with pytest.raises(ValueError, match=r"^`v` must be an integer >= 4 \(why\)\. Received: v=3$"):
        int_at_least("v", 3, 4, reason="why")


def test_int_in_range():
    assert int_in_range("shard_index", 1, 0, 2) == 1
    for bad in (2, -1, 0.0):
        with pytest.raises(ValueError, match=r"^`shard_index` must be an integer in \[0, 2\)\."):
            int_in_range("shard_index", bad, 0, 2)


@pytest.mark.parametrize("check", [non_negative, positive_number])
def test_numbers_return_floats(check):
    assert check("x", 3) == 3.0 and type(check("x", 3)) is float
    assert check("x", np.float32(0.5)) == 0.5
    for bad in (-1, math.nan, "1", True, None):
        with pytest.raises(ValueError, match=r"^`x` must be a (non-negative|positive) number\."):
            check("x", bad)


def test_zero_is_non_negative_but_not_positive():
    assert non_negative("free_bits", 0) == 0.0
    with pytest.raises(ValueError, match=r"Received: learning_rate=0$"):
        positive_number("learning_rate", 0)


def test_one_of():
    assert one_of("targets", "sparse", ("onehot", "sparse")) == "sparse"
    with pytest.raises(ValueError) as info:
        one_of("targets", "dense", ("onehot", "sparse"))
    assert str(info.value) == (
        "`targets` must be one of 'onehot', 'sparse'. Received: targets='dense'"
    )
    with pytest.raises(ValueError, match="Received: targets=\\[\\]"):
        one_of("targets", [], frozenset({"onehot"}))  # unhashable against a set
