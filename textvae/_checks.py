"""Argument validators shared by the configs, the store, the vocabulary and the Sequence.

One wording everywhere, Keras' style: the argument's name, the rule, the value received
(``"`batch_size` must be a positive integer. Received: batch_size=0"``). Every validator raises
:class:`~textvae.errors.InvalidArgumentError` (a ``ValueError``, so ``except ValueError`` still
catches it; a TextVAEError, so the commands print it as one line) and returns the validated
value, so it can be used inline:
``self.hidden = positive_int("hidden", hidden)``.

The allowed values of the few string options are defined here, once. The kernels keep their own
checks: they import only NumPy and numba.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any, TypeVar

from textvae.errors import InvalidArgumentError

__all__ = [
    "DECODERS",
    "DECODER_CELLS",
    "DTYPES",
    "ENCODER_LAYERS",
    "FLOAT32_MAX",
    "INPUT_KINDS",
    "LR_SCHEDULES",
    "OUTPUT_KINDS",
    "PADDINGS",
    "SAMPLE_WEIGHTS",
    "TARGETS",
    "encoder_branches",
    "fraction",
    "in_float32",
    "int_at_least",
    "int_in_range",
    "int_up_to",
    "non_negative",
    "one_of",
    "path",
    "positive_int",
    "positive_number",
    "probability",
]

#: What a Sequence serves as reconstruction targets: one-hot batches, or the ids themselves.
TARGETS = ("onehot", "sparse")
#: What one output of a Sequence batch can be (textvae.batching.layout.BatchLayout): one-hot or
#: sparse targets of the ids, the same of the next ids (language models), binary or class labels.
OUTPUT_KINDS = ("onehot", "sparse", "next_onehot", "next_sparse", "binary", "classes")
#: What one named input of a Sequence batch can be: the ids, or the padding mask.
INPUT_KINDS = ("ids", "mask")
#: Sample weights a Sequence can add to a batch: the padding mask.
SAMPLE_WEIGHTS = ("mask",)
#: One-hot output dtypes the kernels write.
DTYPES = ("float32", "float16", "uint8")
#: ``TrainConfig.jit_compile``: Keras' own choice, or XLA on / off.
JIT_COMPILE = ("auto", "on", "off")
#: The text VAE's decoders: autoregressive (reads the review so far and z) or the seed's repeat.
DECODERS = ("autoregressive", "repeat")
#: The decoders' recurrence: GRU (the seed's) or LSTM (cuDNN's kernel on a GPU under JAX).
DECODER_CELLS = ("gru", "lstm")
#: Adam's learning rate over a run: constant, or a linear decay to 0 over the run's steps.
LR_SCHEDULES = ("constant", "linear")
#: Where padding goes and which end of a long review is cut (Keras' ``pad_sequences``).
PADDINGS = ("pre", "post")

T = TypeVar("T")


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `vocab_size=True` is a mistake, not 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(name: str, rule: str, value: Any, reason: str | None = None) -> InvalidArgumentError:
    why = f" ({reason})" if reason else ""
    return InvalidArgumentError(f"`{name}` must be {rule}{why}. Received: {name}={value!r}")


def int_at_least(
    name: str,
    value: Any,
    minimum: int,
    *,
    allow_none: bool = False,
    reason: str | None = None,
) -> int | None:
    """Check that ``value`` is an integer ``>= minimum`` (or None, with ``allow_none``).

    Parameters
    ----------
    name
        The argument's name, as the caller typed it.
    value
        What was received; NumPy integers are accepted, booleans are not.
    minimum
        The smallest allowed value.
    allow_none
        Accept ``None`` (and return it).
    reason
        Why the rule exists, added to the message in parentheses.

    Returns
    -------
    int or None
        ``value`` as a Python ``int``.

    Raises
    ------
    InvalidArgumentError
        ``value`` is not an integer, or is below ``minimum``.
    """
    if value is None and allow_none:
        return None
    if minimum == 1:
        rule = "a positive integer"
    elif minimum == 0:
        rule = "a non-negative integer"
    else:
        rule = f"an integer >= {minimum}"
    if allow_none:
        rule += " or None"
    if not _is_int(value) or value < minimum:
        raise _fail(name, rule, value, reason)
    return int(value)


def positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """Check that ``value`` is an integer >= 1 (or None, with ``allow_none``); return it.

    Raises
    ------
    InvalidArgumentError
        "`name` must be a positive integer. Received: name=0".
    """
    return int_at_least(name, value, 1, allow_none=allow_none)


def int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """Check that ``value`` is an integer in ``[low, high)``; return it.

    Raises
    ------
    InvalidArgumentError
        "`shard_index` must be an integer in [0, 2). Received: shard_index=2".
    """
    if not _is_int(value) or not low <= value < high:
        raise _fail(name, f"an integer in [{low}, {high})", value)
    return int(value)


def int_up_to(
    name: str,
    value: Any,
    high: int | None,
    *,
    bound: str,
    allow_none: bool = False,
) -> int | None:
    """Check that ``value`` is an integer in ``[1, high]``, a bound named ``bound`` (or None,
    with ``allow_none``); return it. ``high=None``: the bound is not known yet (a store not
    opened), and only ``value >= 1`` is checked, in the same words.

    Raises
    ------
    InvalidArgumentError
        "`target_window` must be an integer in [1, max_len] (max_len is 16). Received:
        target_window=17".
    """
    if value is None and allow_none:
        return None
    rule = f"an integer in [1, {bound}]" + (" or None" if allow_none else "")
    if not _is_int(value) or value < 1:
        raise _fail(name, rule, value, None if high is None else f"{bound} is {high}")
    if high is not None and value > high:
        raise _fail(name, rule, value, f"{bound} is {high}")
    return int(value)


def non_negative(name: str, value: Any) -> float:
    """Check that ``value`` is a finite real number >= 0; return it as a float.

    Raises
    ------
    InvalidArgumentError
        "`free_bits` must be a non-negative number. Received: free_bits=-1.0".
    """
    if not _is_number(value) or not value >= 0:
        raise _fail(name, "a non-negative number", value)
    if not math.isfinite(value):
        raise _fail(name, "a non-negative number", value, "not infinite")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    """Check that ``value`` is a finite real number > 0; return it as a float.

    Raises
    ------
    InvalidArgumentError
        "`learning_rate` must be a positive number. Received: learning_rate=0.0".
    """
    if not _is_number(value) or not value > 0:
        raise _fail(name, "a positive number", value)
    if not math.isfinite(value):
        raise _fail(name, "a positive number", value, "not infinite")
    return float(value)


#: The largest finite float32 (``np.finfo(np.float32).max``): the model computes in float32.
FLOAT32_MAX = 3.4028234663852886e38


def in_float32(name: str, value: float) -> float:
    """Check that a checked number stays finite in float32, where the model uses it (a larger
    learning rate, weight or noise becomes inf there, and every loss NaN); return it.

    Raises
    ------
    InvalidArgumentError
        "`learning_rate` must be at most 3.4e+38 (the model computes in float32, where a larger
        number is infinite). Received: learning_rate=1e+300".
    """
    if value > FLOAT32_MAX:
        raise _fail(
            name,
            f"at most {FLOAT32_MAX:.2g}",
            value,
            "the model computes in float32, where a larger number is infinite",
        )
    return value


def one_of(name: str, value: T, choices: Sequence[Any]) -> T:
    """Check that ``value`` is one of ``choices``; return it.

    Raises
    ------
    InvalidArgumentError
        "`targets` must be one of 'onehot', 'sparse'. Received: targets='dense'".
    """
    # Compared with choices of its own type only: an array's `==` is elementwise, and
    # `True in (1, 2)` would hold.
    ok = any(type(value) is type(c) and value == c for c in choices) or any(
        isinstance(value, str) and isinstance(c, str) and value == c for c in choices
    )
    if not ok:
        raise _fail(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def fraction(name: str, value: Any) -> float:
    """Check that ``value`` is a real number in ``[0, 1)``; return it as a float.

    Raises
    ------
    InvalidArgumentError
        "`word_dropout` must be a number in [0, 1). Received: word_dropout=1.5".
    """
    if not _is_number(value) or not 0 <= value < 1:
        raise _fail(name, "a number in [0, 1)", value)
    return float(value)


#: The most bidirectional LSTM layers the text VAE's encoder stacks (the seed's two).
ENCODER_LAYERS = 2


def encoder_branches(layers: Any, pooling: bool, bigram_buckets: int) -> int:
    """Check the encoder's ``encoder_layers`` (an integer in [0, 2]) and that it has a branch
    to read: without the recurrence (0 layers) a pooled one; return the layers.

    Raises
    ------
    InvalidArgumentError
        "`encoder_layers` must be an integer in [0, 3). Received: encoder_layers=3", or 0
        layers with ``encoder_pooling`` off and no ``bigram_buckets``.
    """
    layers = int_in_range("encoder_layers", layers, 0, ENCODER_LAYERS + 1)
    if layers == 0 and not pooling and not bigram_buckets:
        raise InvalidArgumentError(
            "`encoder_layers=0` leaves the encoder nothing to read: turn on encoder_pooling "
            "(--encoder-pooling) or bigram_buckets (--bigram-buckets N), or use 1 or 2 layers"
        )
    return layers


def probability(name: str, value: Any) -> float:
    """Check that ``value`` is a real number in ``(0, 1]``; return it as a float.

    Raises
    ------
    InvalidArgumentError
        "`top_p` must be a number in (0, 1]. Received: top_p=0.0".
    """
    if not _is_number(value) or not 0 < value <= 1:
        raise _fail(name, "a number in (0, 1]", value)
    return float(value)


def path(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """Check that ``value`` is a non-empty path (``str`` or ``os.PathLike``), or None with
    ``allow_none``; return it as a ``str``. An empty path would silently mean the current
    folder.

    Raises
    ------
    InvalidArgumentError
        "`out` must be a non-empty path. Received: out=''".
    """
    if value is None and allow_none:
        return None
    rule = "a non-empty path" + (" or None" if allow_none else "")
    if not isinstance(value, (str, os.PathLike)):
        raise _fail(name, rule, value)
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise _fail(name, rule, value)
    return text
