"""Tests of textvae.kernels: onehot against textvae.testing.onehot_reference, bad input,
alignment, threads."""

from __future__ import annotations

import gc
import importlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.kernels import ALIGNMENT, aligned_empty, onehot
from textvae.testing import onehot_reference

OUT_DTYPES = ["float32", "float16", "uint8"]
ID_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
SENTINEL = 7  # representable in every output dtype, and neither 0 nor 1


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_ids(rng, shape, vocab_size, id_dtype="int32"):
    high = min(vocab_size, int(np.iinfo(id_dtype).max) + 1)
    return rng.integers(0, high, size=shape).astype(id_dtype)


def sentinel_view(shape, dtype, pad=64):
    """A C-contiguous `out` inside a larger sentinel-filled buffer: (buffer, out, pad)."""
    size = int(np.prod(shape))
    buffer = np.full(size + 2 * pad, SENTINEL, dtype=dtype)
    return buffer, buffer[pad : pad + size].reshape(shape), pad


def assert_margins_untouched(buffer, pad):
    assert (buffer[:pad] == SENTINEL).all()
    assert (buffer[buffer.size - pad :] == SENTINEL).all()


# --------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("dtype", OUT_DTYPES)
@pytest.mark.parametrize("id_dtype", ID_DTYPES)
def test_onehot_matches_reference(rng, dtype, id_dtype):
    ids = random_ids(rng, (5, 13), 97, id_dtype)
    result = onehot(ids, 97, dtype=dtype)
    expected = onehot_reference(ids, 97, dtype)
    assert result.dtype == np.dtype(dtype)
    assert result.shape == (5, 13, 97)
    assert result.flags.c_contiguous
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    "dtype", [np.float32, np.dtype("float16"), "uint8", "f4", "e"], ids=lambda d: str(d)
)
def test_onehot_accepts_dtype_objects(rng, dtype):
    ids = random_ids(rng, (3, 4), 11)
    result = onehot(ids, 11, dtype=dtype)
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result, onehot_reference(ids, 11, dtype))


@pytest.mark.parametrize("dtype", OUT_DTYPES)
def test_onehot_overwrites_every_element_of_out(rng, dtype):
    ids = random_ids(rng, (4, 9), 50)
    buffer, out, pad = sentinel_view((4, 9, 50), dtype)
    result = onehot(ids, 50, dtype=dtype, out=out)
    assert result is out
    np.testing.assert_array_equal(out, onehot_reference(ids, 50, dtype))
    assert_margins_untouched(buffer, pad)


def test_onehot_extreme_ids_are_placed(rng):
    ids = np.array([[0, 99], [99, 0]], dtype=np.uint64)
    result = onehot(ids, 100, dtype="uint8")
    np.testing.assert_array_equal(result, onehot_reference(ids, 100, "uint8"))


@pytest.mark.parametrize(
    "make_view",
    [
        pytest.param(lambda a: a[:, ::2], id="column-stride"),
        pytest.param(lambda a: a[::3], id="row-stride"),
        pytest.param(lambda a: a.T, id="transposed"),
        pytest.param(lambda a: np.asfortranarray(a), id="fortran"),
        pytest.param(lambda a: a.astype(a.dtype.newbyteorder(">")), id="big-endian"),
    ],
)
def test_onehot_accepts_any_id_layout(rng, make_view):
    ids = make_view(random_ids(rng, (9, 12), 30, "int32"))
    result = onehot(ids, 30)
    np.testing.assert_array_equal(result, onehot_reference(np.asarray(ids), 30, "float32"))


def test_onehot_accepts_nested_lists():
    result = onehot([[2, 0], [1, 1]], 3, dtype="uint8")
    np.testing.assert_array_equal(result, onehot_reference([[2, 0], [1, 1]], 3, "uint8"))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)], ids=str)
@pytest.mark.parametrize("dtype", OUT_DTYPES)
def test_onehot_empty_batches(shape, dtype):
    ids = np.zeros(shape, dtype=np.int32)
    result = onehot(ids, 8, dtype=dtype)
    assert result.shape == (*shape, 8)
    out = np.empty((*shape, 8), dtype=dtype)
    assert onehot(ids, 8, dtype=dtype, out=out) is out


def test_onehot_ids_inside_out_are_read_before_zeroing(rng):
    # `ids` is a view of the first bytes of `out`: the kernel zeroes `out` before it reads ids,
    # so the wrapper must copy them first.
    out = aligned_empty((1, 8, 16), "uint8")
    ids = out.reshape(-1)[:8].reshape(1, 8)
    ids[...] = rng.integers(1, 16, size=(1, 8))
    expected = onehot_reference(ids.copy(), 16, "uint8")
    onehot(ids, 16, dtype="uint8", out=out)
    np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------- properties


@st.composite
def onehot_cases(draw):
    batch = draw(st.integers(0, 6))
    max_len = draw(st.integers(0, 9))
    vocab_size = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from(OUT_DTYPES))
    id_dtype = np.dtype(draw(st.sampled_from(ID_DTYPES)))
    info = np.iinfo(id_dtype)
    # Mostly valid ids, sometimes a few outside [0, vocab_size) on either side.
    low = max(int(info.min), -3)
    high = min(int(info.max), vocab_size + 2)
    if draw(st.booleans()):
        low, high = 0, min(int(info.max), vocab_size - 1)
    values = draw(
        st.lists(st.integers(low, high), min_size=batch * max_len, max_size=batch * max_len)
    )
    ids = np.array(values, dtype=id_dtype).reshape(batch, max_len)
    return ids, vocab_size, dtype


@settings(max_examples=150, deadline=None)
@given(onehot_cases())
def test_onehot_property(case):
    ids, vocab_size, dtype = case
    buffer, out, pad = sentinel_view((*ids.shape, vocab_size), dtype)
    bad = np.flatnonzero((ids.astype(np.int64) < 0) | (ids.astype(np.int64) >= vocab_size))
    if bad.size == 0:
        assert onehot(ids, vocab_size, dtype=dtype, out=out) is out
        np.testing.assert_array_equal(out, onehot_reference(ids, vocab_size, dtype))
        fresh = onehot(ids, vocab_size, dtype=dtype)
        np.testing.assert_array_equal(fresh, out)
    else:
        row, col = divmod(int(bad[0]), ids.shape[1])
        message = f"token id {ids[row, col]} at position ({row}, {col})"
        with pytest.raises(ValueError, match=re.escape(message)):
            onehot(ids, vocab_size, dtype=dtype, out=out)
        assert (buffer == SENTINEL).all()
    assert_margins_untouched(buffer, pad)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bad_id", "id_dtype", "vocab_size"),
    [
        pytest.param(20001, "int32", 20000, id="just-above"),
        pytest.param(20000, "uint16", 20000, id="equal-to-vocab"),
        pytest.param(-1, "int64", 20000, id="negative"),
        pytest.param(-128, "int8", 100, id="int8-min"),
        pytest.param(2**40, "int64", 20000, id="huge-int64"),
        pytest.param(2**63 - 1, "int64", 20000, id="int64-max"),
        pytest.param(2**64 - 1, "uint64", 20000, id="uint64-max"),
        pytest.param(2**63, "uint64", 20000, id="uint64-sign-bit"),
    ],
)
@pytest.mark.parametrize("dtype", OUT_DTYPES)
def test_onehot_refuses_out_of_range_ids_and_leaves_out_untouched(
    rng, bad_id, id_dtype, vocab_size, dtype
):
    ids = random_ids(rng, (5, 20), vocab_size, id_dtype)
    ids[3, 17] = bad_id
    ids[4, 2] = bad_id  # a later bad id must not be the one reported
    buffer, out, _ = sentinel_view((5, 20, vocab_size), dtype)
    with pytest.raises(ValueError, match=r"token id (-?\d+) at position \(3, 17\)") as info:
        onehot(ids, vocab_size, dtype=dtype, out=out)
    message = str(info.value)
    assert f"token id {bad_id} " in message
    assert f"[0, {vocab_size})" in message
    if bad_id >= 0:
        assert f"vocab_size={bad_id + 1}" in message
    assert (buffer == SENTINEL).all()


def test_onehot_error_message_names_the_fix():
    ids = np.zeros((4, 20), dtype=np.int32)
    ids[3, 17] = 20001
    with pytest.raises(ValueError) as info:
        onehot(ids, 20000)
    assert str(info.value) == (
        "token id 20001 at position (3, 17) is outside [0, 20000): "
        "encode the ids with this vocab_size or pass vocab_size=20002 or more"
    )


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(np.zeros((2, 3), dtype=np.float32), id="float32"),
        pytest.param(np.zeros((2, 3), dtype=np.float64), id="float64"),
        pytest.param(np.zeros((2, 3), dtype=bool), id="bool"),
        pytest.param(np.zeros((2, 3), dtype=np.complex64), id="complex"),
        pytest.param(np.array([["a", "b"]]), id="str"),
        pytest.param(np.array([[1, None]], dtype=object), id="object"),
        pytest.param([[1.0, 2.0]], id="float-list"),
    ],
)
def test_onehot_refuses_non_integer_ids(ids):
    with pytest.raises(TypeError, match="`ids` must be an array of integer token ids"):
        onehot(ids, 5)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 1), ()], ids=str)
def test_onehot_refuses_ids_that_are_not_2d(shape):
    with pytest.raises(
        ValueError,
        match=re.escape(f"must be 2-D (batch, max_len). Received: ids with shape={shape}"),
    ):
        onehot(np.zeros(shape, dtype=np.int32), 5)


@pytest.mark.parametrize(
    "vocab_size", [0, -1, 2**70, 2.0, True, "10", None, np.float32(3)], ids=repr
)
def test_onehot_refuses_bad_vocab_size(vocab_size):
    with pytest.raises(ValueError, match=re.escape(f"Received: vocab_size={vocab_size!r}")):
        onehot(np.zeros((2, 3), dtype=np.int32), vocab_size)


def test_onehot_accepts_numpy_integer_vocab_size(rng):
    ids = random_ids(rng, (2, 3), 9)
    np.testing.assert_array_equal(onehot(ids, np.int16(9)), onehot_reference(ids, 9))


@pytest.mark.parametrize("dtype", ["float64", "int32", "bool", ">f4", "bfloat16", "no-such-type"])
def test_onehot_refuses_unsupported_dtype(dtype):
    with pytest.raises(ValueError, match=r"`dtype` must be one of float32, float16, uint8"):
        onehot(np.zeros((2, 3), dtype=np.int32), 5, dtype=dtype)


def _read_only(shape, dtype):
    out = np.full(shape, SENTINEL, dtype=dtype)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize(
    ("make_out", "match"),
    [
        pytest.param(
            lambda: np.full((2, 3, 6), SENTINEL, "float32"),
            r"shape \(2, 3, 5\).*Received: out.shape=\(2, 3, 6\)",
            id="wrong-vocab-axis",
        ),
        pytest.param(
            lambda: np.full((3, 2, 5), SENTINEL, "float32"),
            r"shape \(2, 3, 5\).*Received: out.shape=\(3, 2, 5\)",
            id="wrong-shape",
        ),
        pytest.param(
            lambda: np.full((2, 3, 5), SENTINEL, "float64"),
            r"dtype float32.*Received: out.dtype=float64",
            id="wrong-dtype",
        ),
        pytest.param(
            lambda: np.full((2, 3, 5), SENTINEL, "uint8"),
            r"dtype float32.*Received: out.dtype=uint8; pass dtype='uint8'",
            id="uint8-out-float32-dtype",
        ),
        pytest.param(
            lambda: np.full((2, 3, 5), SENTINEL, ">f4"),
            r"dtype float32.*Received: out.dtype=>f4",
            id="big-endian",
        ),
        pytest.param(
            lambda: np.full((2, 3, 10), SENTINEL, "float32")[:, :, ::2],
            r"C-contiguous.*Received: a non-contiguous array",
            id="strided",
        ),
        pytest.param(
            lambda: np.full((2, 3, 5), SENTINEL, "float32", order="F"),
            r"C-contiguous.*Received: a non-contiguous array",
            id="fortran",
        ),
        pytest.param(
            lambda: _read_only((2, 3, 5), "float32"),
            r"writeable. Received: a read-only array",
            id="read-only",
        ),
    ],
)
def test_onehot_refuses_bad_out_and_leaves_it_untouched(make_out, match):
    out = make_out()
    with pytest.raises(ValueError, match=match):
        onehot(np.ones((2, 3), dtype=np.int32), 5, out=out)
    assert (out == SENTINEL).all()


def test_onehot_refuses_out_that_is_not_an_array():
    with pytest.raises(
        TypeError, match=r"`out` must be a NumPy array\. Received: out of type list"
    ):
        onehot(np.ones((1, 1), dtype=np.int32), 2, out=[[[0.0, 0.0]]])


# --------------------------------------------------------------------------- aligned_empty


@pytest.mark.parametrize(
    "shape", [(64, 300, 20), (1,), (3, 5, 7), (0, 4, 9), (1, 1, 1), 17, ()], ids=str
)
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8", "float64", np.int16])
def test_aligned_empty_is_aligned_and_c_contiguous(shape, dtype):
    expected_shape = (shape,) if isinstance(shape, int) else shape
    # Several allocations, so that a lucky 64-byte-aligned malloc cannot pass the test alone.
    arrays = [aligned_empty(shape, dtype) for _ in range(8)]
    for arr in arrays:
        assert arr.shape == expected_shape
        assert arr.dtype == np.dtype(dtype)
        assert arr.flags.c_contiguous
        assert arr.flags.writeable
        assert arr.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("alignment", [1, 16, 128, 4096])
def test_aligned_empty_honours_alignment(alignment):
    for _ in range(8):
        arr = aligned_empty((7, 3), "float32", alignment=alignment)
        assert arr.ctypes.data % alignment == 0
        assert arr.shape == (7, 3)


@pytest.mark.parametrize("alignment", [0, -64, 3, 48, 2.0, True, None], ids=repr)
def test_aligned_empty_refuses_bad_alignment(alignment):
    with pytest.raises(ValueError, match=re.escape(f"Received: alignment={alignment!r}")):
        aligned_empty((2, 2), "float32", alignment=alignment)


def test_aligned_empty_refuses_negative_shape():
    with pytest.raises(ValueError, match="negative"):
        aligned_empty((2, -1), "float32")


def test_aligned_empty_refuses_object_dtype():
    with pytest.raises(TypeError, match="Python objects"):
        aligned_empty((2,), object)


def test_aligned_empty_keeps_its_buffer_alive():
    arr = aligned_empty((256, 1024), "float32")
    assert arr.base is not None
    gc.collect()
    arr[...] = np.arange(1024, dtype=np.float32)
    other = [np.ones((256, 1024), np.float32) for _ in range(4)]  # reuse freed memory, if any
    assert (arr == np.arange(1024, dtype=np.float32)).all()
    del other


def test_onehot_allocates_aligned_output(rng):
    for shape in [(3, 5), (64, 30), (1, 1)]:
        for dtype in OUT_DTYPES:
            result = onehot(random_ids(rng, shape, 13), 13, dtype=dtype)
            assert result.ctypes.data % ALIGNMENT == 0


# --------------------------------------------------------------------------- threads, cache


def test_onehot_is_thread_safe(rng):
    vocab_size = 2000
    batches = [random_ids(rng, (16, 50), vocab_size, "uint16") for _ in range(4)]

    def work(index):
        ids = batches[index]
        dtype = OUT_DTYPES[index % len(OUT_DTYPES)]
        expected = onehot_reference(ids, vocab_size, dtype)
        out = aligned_empty(expected.shape, dtype)
        for _ in range(25):
            out.view(np.uint8).fill(SENTINEL)
            onehot(ids, vocab_size, dtype=dtype, out=out)
            if not np.array_equal(out, expected):
                return False
        return True

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    assert results == [True] * 4


def test_kernels_release_the_gil():
    # The private kernels live in the module textvae.kernels._onehot (textvae.kernels.onehot is
    # the public wrapper function, so no module hides behind that name).
    kernels_module = importlib.import_module("textvae.kernels._onehot")
    for kernel in (kernels_module._fill_onehot, kernels_module._first_out_of_range):
        assert kernel.targetoptions["nogil"] is True
        assert kernel.targetoptions.get("parallel", False) is False


_STANDALONE = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("onehot_copy", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = module.onehot(np.array([[1, 0]], dtype=np.int32), 3, dtype="float16")
assert out.tolist() == [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]], out
print("ok")
"""


@pytest.mark.parametrize(
    ("locators", "cache_files_expected"),
    [
        # The source directory cannot be written: numba caches in the per-user directory.
        pytest.param("UserWideCacheLocator", True, id="user-cache-dir"),
        # No cache location at all: numba refuses cache=True and the module compiles uncached.
        pytest.param("UserProvidedCacheLocator", False, id="no-cache-location"),
    ],
)
def test_kernels_import_and_run_where_numba_cannot_cache_in_tree(
    tmp_path, locators, cache_files_expected
):
    source = importlib.import_module("textvae.kernels._onehot").__file__
    copy = tmp_path / "src" / "onehot_copy.py"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_LOCATOR_CLASSES=locators, XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _STANDALONE, str(copy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert not (copy.parent / "__pycache__").exists()
    cache_files = list((tmp_path / "cache").rglob("*.nbi"))
    assert bool(cache_files) is cache_files_expected


# -- recycled buffers: `previous` clears only the cells that hold ones ----------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_onehot_update_with_previous_matches_reference(rng, dtype):
    vocab, shape = 23, (5, 7)
    out = aligned_empty((*shape, vocab), dtype)
    out[...] = 0
    previous = np.full(shape, -1, dtype=np.int32)
    for _ in range(6):
        ids = rng.integers(0, vocab, size=shape)
        result = onehot(ids, vocab, dtype=dtype, out=out, previous=previous)
        assert result is out
        np.testing.assert_array_equal(out, onehot_reference(ids, vocab, dtype))
        np.testing.assert_array_equal(previous, ids)


def test_onehot_update_of_leading_rows_leaves_the_rest(rng):
    """A partial batch updates the first rows of a recycled buffer; the others keep their ones."""
    vocab = 11
    full = aligned_empty((4, 3, vocab), "uint8")
    record = np.full((4, 3), -1, dtype=np.int32)
    full[...] = 0
    first = rng.integers(0, vocab, size=(4, 3))
    onehot(first, vocab, dtype="uint8", out=full, previous=record)
    second = rng.integers(0, vocab, size=(2, 3))
    onehot(second, vocab, dtype="uint8", out=full[:2], previous=record[:2])
    expected = np.concatenate([second, first[2:]])
    np.testing.assert_array_equal(full, onehot_reference(expected, vocab, "uint8"))
    np.testing.assert_array_equal(record, expected)


@pytest.mark.parametrize(
    ("make_previous", "error", "match"),
    [
        (lambda: np.full((2, 3), 5, dtype=np.int32), ValueError, r"holds 5 at position \(0, 0\)"),
        (lambda: np.full((2, 3), -2, dtype=np.int32), ValueError, r"outside \[-1, 5\)"),
        (lambda: np.zeros((2, 3), dtype=np.int64), TypeError, "int32"),
        (lambda: np.zeros((3, 2), dtype=np.int32), ValueError, "shape"),
        (lambda: np.zeros((2, 6), dtype=np.int32)[:, ::2], ValueError, "C-contiguous"),
    ],
    ids=["too-large", "below-minus-one", "int64", "wrong-shape", "strided"],
)
def test_onehot_refuses_bad_previous_and_writes_nothing(make_previous, error, match):
    out = np.full((2, 3, 5), 7, dtype=np.uint8)
    previous = make_previous()
    before = previous.copy()
    with pytest.raises(error, match=match):
        onehot(np.zeros((2, 3), dtype=np.int32), 5, dtype="uint8", out=out, previous=previous)
    assert (out == 7).all()
    np.testing.assert_array_equal(previous, before)


def test_onehot_previous_needs_out():
    with pytest.raises(ValueError, match="pass `out`"):
        onehot([[1]], 3, previous=np.zeros((1, 1), dtype=np.int32))


def test_onehot_update_refuses_bad_ids_before_writing():
    out = aligned_empty((1, 2, 4), "uint8")
    out[...] = 0
    previous = np.full((1, 2), -1, dtype=np.int32)
    with pytest.raises(ValueError, match=r"token id 4 at position \(0, 1\)"):
        onehot([[1, 4]], 4, dtype="uint8", out=out, previous=previous)
    assert not out.any() and (previous == -1).all()
