"""One-hot expansion of a batch of token ids, and 64-byte-aligned output buffers.

The public :func:`onehot` validates everything (dtypes, shapes, contiguity, the id range) and
allocates; the private numba kernels only compute, release the GIL and allocate nothing.
This module imports NumPy and numba only.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba.core.errors import NumbaError

__all__ = ["ALIGNMENT", "aligned_empty", "onehot"]

#: Byte alignment of buffers from :func:`aligned_empty`. TensorFlow takes a 64-byte-aligned
#: NumPy array without copying it and copies anything else (DESIGN.md, "Facts measured here").
ALIGNMENT = 64

# Output dtype -> (unsigned dtype of the same width, bit pattern of the value 1 in the output
# dtype). The kernel writes ones through the unsigned view, so one kernel serves every output
# dtype, and float16 works although numba has no float16 arrays.
_ONE_BITS: dict[np.dtype, tuple[np.dtype, int]] = {
    np.dtype(np.float32): (np.dtype(np.uint32), 0x3F80_0000),
    np.dtype(np.float16): (np.dtype(np.uint16), 0x3C00),
    np.dtype(np.uint8): (np.dtype(np.uint8), 1),
}
_DTYPE_NAMES = ", ".join(str(d) for d in _ONE_BITS)


def _njit(func: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(cache=True, nogil=True)``, without the cache where numba cannot keep one.

    numba caches next to the source file, or in a per-user directory when that is read-only;
    where neither can be written it refuses ``cache=True`` at decoration time, and an import
    error would be a poor price for a missing cache.
    """
    try:
        return numba.njit(cache=True, nogil=True)(func)
    except (RuntimeError, NumbaError):
        return numba.njit(cache=False, nogil=True)(func)


@_njit
def _first_out_of_range(ids, vocab_size):
    """Flat index of the first id outside [0, vocab_size), or -1 when all are inside."""
    for i in range(ids.size):
        token = ids[i]
        if token < 0 or token >= vocab_size:
            return i
    return -1


@_njit
def _fill_onehot(ids, vocab_size, out_bytes, out_units, one):
    """Zero ``out_bytes``, then set ``out_units[i * vocab_size + ids[i]] = one`` for every i.

    ``out_bytes`` and ``out_units`` are flat uint8 and unsigned views of the same C-contiguous
    output. Zeroing bytes compiles to a memset, which is 2.5x faster than a float32 fill.
    Each id is read once and checked before its write, so even ids changed by another thread
    since the caller's range check cannot send a write outside the buffer; the flat index of
    such an id is returned (-1 when every id was written).
    """
    out_bytes[:] = 0
    for i in range(ids.size):
        token = ids[i]
        if token < 0 or token >= vocab_size:
            return i
        out_units[i * vocab_size + np.intp(token)] = one
    return -1


@_njit
def _first_outside(values, low, high):
    """Flat index of the first value outside [low, high), or -1."""
    for i in range(values.size):
        v = values[i]
        if v < low or v >= high:
            return i
    return -1


@_njit
def _update_onehot(ids, vocab_size, previous, out_units, one):
    """Clear the one at ``previous[i]`` and set the one at ``ids[i]`` for every position i,
    then record ``previous[i] = ids[i]``: O(batch * max_len), whatever the vocabulary.

    ``out_units`` must hold exactly the ones ``previous`` records (-1: an all-zero position).
    Every index is checked before its write, so not even a ``previous`` or ``ids`` changed by
    another thread can send a write outside the buffer; the flat index of a bad id is returned
    (-1 when every id was written).
    """
    for i in range(ids.size):
        token = ids[i]
        if token < 0 or token >= vocab_size:
            return i
        old = previous[i]
        if old >= 0 and old < vocab_size:
            out_units[i * vocab_size + np.intp(old)] = 0
        out_units[i * vocab_size + np.intp(token)] = one
        previous[i] = token
    return -1


def aligned_empty(shape, dtype, alignment: int = ALIGNMENT) -> np.ndarray:
    """Return an uninitialised C-contiguous array whose data starts on an `alignment` boundary.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array.
    dtype : dtype-like
        Element type (any NumPy dtype without Python objects).
    alignment : int, default ALIGNMENT (64)
        Byte alignment of the data pointer, a positive power of two.

    Returns
    -------
    numpy.ndarray
        An array over a slightly larger uint8 buffer, which it keeps alive through ``.base``.

    Examples
    --------
    >>> a = aligned_empty((64, 300, 20), "float32")
    >>> a.ctypes.data % 64, a.flags.c_contiguous
    (0, True)
    """
    if (
        isinstance(alignment, bool)
        or not isinstance(alignment, (int, np.integer))
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise ValueError(
            "`alignment` must be a positive power of two (bytes). "
            f"Received: alignment={alignment!r}"
        )
    alignment = int(alignment)
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise TypeError(
            f"`dtype` must not hold Python objects in an aligned buffer. Received: dtype={dtype}"
        )
    shape = (operator.index(shape),) if np.ndim(shape) == 0 else tuple(map(operator.index, shape))
    if any(n < 0 for n in shape):
        raise ValueError(f"`shape` must not have negative sizes. Received: shape={shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    # Built on the buffer directly: a reshape of a 0-size view may move its data pointer.
    return np.ndarray(shape, dtype=dtype, buffer=raw, offset=start)


def onehot(ids, vocab_size: int, *, dtype="float32", out=None, previous=None) -> np.ndarray:
    """Expand a batch of token ids to one-hot vectors.

    Parameters
    ----------
    ids : array_like of int, shape (batch, max_len)
        Token ids, of any integer dtype, contiguous or not. Every id must lie in
        ``[0, vocab_size)``.
    vocab_size : int
        Length of the one-hot axis, a positive integer.
    dtype : {"float32", "float16", "uint8"} or equivalent dtype, default "float32"
        Element type of the result.
    out : numpy.ndarray, optional
        Writeable C-contiguous array of shape ``(batch, max_len, vocab_size)`` and dtype `dtype`
        to write into. It is left untouched when the call raises. By default a fresh
        64-byte-aligned array (:func:`aligned_empty`) is allocated.
    previous : numpy.ndarray of int32, shape (batch, max_len), optional
        For a recycled `out`: the ids whose ones `out` holds now (-1 where a position is all
        zero). Only those cells are cleared, instead of zeroing the whole of `out`, and
        `previous` is then set to `ids`: the work no longer grows with `vocab_size`. The caller
        keeps `previous` true to `out` (nobody else may write `out`); a value outside
        ``[-1, vocab_size)`` raises ``ValueError``. Requires `out`.

    Returns
    -------
    numpy.ndarray, shape (batch, max_len, vocab_size)
        ``result[b, t, ids[b, t]] == 1`` and every other element 0; `out` itself when given.

    Raises
    ------
    TypeError
        If `ids` is not an integer array (bool and float ids are refused) or `out` is not a
        NumPy array.
    ValueError
        If an id lies outside ``[0, vocab_size)`` (the message gives its position and value),
        `ids` is not 2-D, `vocab_size` is not a positive integer, `dtype` is not supported, or
        `out` has the wrong shape or dtype, is not C-contiguous or is read-only.

    Examples
    --------
    >>> onehot([[2, 0]], 3, dtype="uint8")
    array([[[0, 0, 1],
            [1, 0, 0]]], dtype=uint8)
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ValueError(
            f"`vocab_size` must be a positive integer. Received: vocab_size={vocab_size!r}"
        )
    vocab_size = int(vocab_size)
    if not 0 < vocab_size <= np.iinfo(np.intp).max:
        raise ValueError(
            f"`vocab_size` must be a positive integer. Received: vocab_size={vocab_size}"
        )

    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        out_dtype = None
    if out_dtype not in _ONE_BITS:
        raise ValueError(f"`dtype` must be one of {_DTYPE_NAMES}. Received: dtype={dtype!r}")
    unit_dtype, one_bits = _ONE_BITS[out_dtype]

    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(
            f"`ids` must be an array of integer token ids. Received: ids with dtype={ids.dtype}"
        )
    if ids.ndim != 2:
        raise ValueError(
            f"`ids` must be 2-D (batch, max_len). Received: ids with shape={ids.shape}"
        )
    if not ids.dtype.isnative:  # numba compiles for native byte order only
        ids = ids.astype(ids.dtype.newbyteorder("="))
    shape = (*ids.shape, vocab_size)

    if out is not None:
        _check_out(out, shape, out_dtype)
        # The kernel zeroes `out` before it reads `ids`: ids living inside `out` must move.
        if np.may_share_memory(ids, out):
            ids = ids.copy()
    if previous is not None:
        _check_previous(previous, ids.shape, out, vocab_size)
        if np.may_share_memory(ids, previous):
            ids = ids.copy()
    flat_ids = np.ascontiguousarray(ids).reshape(-1)

    # Unsigned 64-bit ids against a signed bound would compare as float64; keep it exact.
    bound = np.uint64(vocab_size) if ids.dtype == np.uint64 else np.int64(vocab_size)
    bad = _first_out_of_range(flat_ids, bound)
    if bad >= 0:
        raise ValueError(_range_message(ids, flat_ids, bad, vocab_size))

    if out is None:
        out = aligned_empty(shape, out_dtype)
    flat_out = out.reshape(-1)
    if previous is not None:
        bad = _update_onehot(
            flat_ids,
            np.int64(vocab_size),
            previous.reshape(-1),
            flat_out.view(unit_dtype),
            unit_dtype.type(one_bits),
        )
    else:
        bad = _fill_onehot(
            flat_ids,
            np.int64(vocab_size),
            flat_out.view(np.uint8),
            flat_out.view(unit_dtype),
            unit_dtype.type(one_bits),
        )
    if bad >= 0:  # only when another thread rewrote `ids` during this call
        raise RuntimeError(
            "`ids` changed while onehot was reading them: "
            + _range_message(ids, flat_ids, bad, vocab_size)
        )
    return out


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"`out` must be a NumPy array. Received: out of type {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(
            f"`out` must have shape {shape} (ids.shape + (vocab_size,)). "
            f"Received: out.shape={out.shape}"
        )
    if out.dtype != dtype:
        raise ValueError(
            f"`out` must have dtype {dtype} (the `dtype` argument). Received: "
            f"out.dtype={out.dtype}; pass dtype={str(out.dtype)!r} to write into it"
        )
    if not out.flags.c_contiguous:
        raise ValueError(
            "`out` must be C-contiguous. Received: a non-contiguous array with "
            f"strides={out.strides}"
        )
    if not out.flags.writeable:
        raise ValueError("`out` must be writeable. Received: a read-only array")


def _check_previous(previous: Any, shape: tuple[int, ...], out: Any, vocab_size: int) -> None:
    if out is None:
        raise ValueError("`previous` describes a recycled `out`: pass `out` as well")
    if not isinstance(previous, np.ndarray) or previous.dtype != np.int32:
        raise TypeError(
            "`previous` must be an int32 NumPy array. Received: "
            f"{getattr(previous, 'dtype', type(previous).__name__)}"
        )
    if previous.shape != shape:
        raise ValueError(
            f"`previous` must have the shape of `ids`, {shape}. Received: {previous.shape}"
        )
    if not (previous.flags.c_contiguous and previous.flags.writeable):
        raise ValueError("`previous` must be C-contiguous and writeable (it is updated)")
    if np.may_share_memory(previous, out):
        raise ValueError("`previous` must not live inside `out`")
    bad = _first_outside(previous.reshape(-1), np.int64(-1), np.int64(vocab_size))
    if bad >= 0:
        row, col = divmod(int(bad), shape[1])
        raise ValueError(
            f"`previous` holds {int(previous.reshape(-1)[bad])} at position ({row}, {col}), "
            f"outside [-1, {vocab_size}): it does not describe `out`; zero `out` and pass "
            "previous filled with -1"
        )


def _range_message(ids: np.ndarray, flat_ids: np.ndarray, bad: int, vocab_size: int) -> str:
    token = int(flat_ids[bad])
    row, col = divmod(int(bad), ids.shape[1])
    if token < 0:
        fix = "token ids are non-negative: check how the ids were made"
    else:
        fix = f"encode the ids with this vocab_size or pass vocab_size={token + 1} or more"
    return f"token id {token} at position ({row}, {col}) is outside [0, {vocab_size}): {fix}"
