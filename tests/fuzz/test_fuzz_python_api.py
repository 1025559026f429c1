"""Fuzz of the public Python API's validation: the configs, ``build_store``,
``OneHotSequence`` and the ``onehot`` kernel with bad arguments. Beside the fuzz, the inputs it
found, kept as plain tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fuzz_harness import example_dir, tally
from fuzz_strategies import HUGE, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from textvae.data.store import TokenStore
from textvae.errors import TextVAEError

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


ODD_ARGS = st.one_of(
    st.integers(-3, 40),
    HUGE,
    st.floats(allow_nan=True),
    st.sampled_from([None, True, "", "8", "pre", "onehot", [1], (2, 3), b"x", np.int64(3)]),
)


@fuzz_settings(120)
@given(
    api=st.sampled_from(["IngestConfig", "TrainConfig", "ModelConfig"]),
    data=st.data(),
    value=ODD_ARGS,
)
def test_fuzz_config_arguments(api, data, value):
    """One field of the drawn config set to an odd value: accepted, or refused with a
    ValueError that names the field. The field is drawn from the class's own dataclass fields,
    so every draw sets a field the config has."""
    import textvae

    cls = getattr(textvae, api)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    field = data.draw(st.sampled_from(names), label="field")
    base = {"source": "c.jsonl", "store": "s.zarr"} if api == "IngestConfig" else {}
    try:
        cls(**{**base, field: value})
    except TextVAEError as err:
        assert isinstance(err, ValueError) and f"`{field}`" in str(err), err
        tally("config arguments", "refused", str(err))
    else:
        tally("config arguments", "ok")


@fuzz_settings(60)
@given(
    argument=st.sampled_from(
        [
            "batch_size",
            "split",
            "targets",
            "dtype",
            "seed",
            "shard_index",
            "num_shards",
            "rows",
            "window_chunks",
            "pool_size",
            "vocab_size",
            "max_len",
            "row_subset",
        ]
    ),
    value=st.one_of(ODD_ARGS, st.sampled_from([np.arange(3), np.array([-1]), np.zeros(2)])),
)
def test_fuzz_sequence_arguments(world, argument, value):
    from textvae.batching import MemoryOptions, OneHotSequence, SamplingOptions, ShardOptions

    # A grouped option reaches the Sequence through its options object, as a user passes it.
    groups = {
        "shards": (ShardOptions, ("shard_index", "num_shards")),
        "sampling": (SamplingOptions, ("rows", "row_subset", "window_chunks")),
        "memory": (MemoryOptions, ("pool_size",)),
    }
    try:
        kwargs = {argument: value}
        for keyword, (options, names) in groups.items():
            if argument in names:
                kwargs = {keyword: options(**{argument: value})}
        seq = OneHotSequence(str(world.store), **kwargs)
        seq[0]
    except TextVAEError as err:
        tally("sequence arguments", "refused", str(err))
    except IndexError as err:  # indices out of range: the built-in error, stating the range
        assert "valid rows are [0, 21)" in str(err), err
        tally("sequence arguments", "refused", str(err))
    else:
        tally("sequence arguments", "ok")


@fuzz_settings(60)
@given(
    argument=st.sampled_from(
        ["vocab_size", "max_len", "chunk_rows", "padding", "truncating", "storage_options"]
    ),
    value=ODD_ARGS,
)
def test_fuzz_build_store_arguments(world, argument, value):
    from textvae.data import build_store
    from textvae.data.discover import open_corpus

    kwargs = {"vocab_size": 12, "max_len": 8, argument: value}
    with example_dir(world.root) as where:
        try:
            build_store(where / "s.zarr", open_corpus(world.corpus), **kwargs)
        except TextVAEError as err:
            assert not (where / "s.zarr").exists()
            tally("build_store arguments", "refused", str(err))
        else:
            tally("build_store arguments", "ok")


@fuzz_settings(60)
@given(
    ids=st.one_of(
        st.sampled_from([[[0, 1]], [[3]], [[-1, 0]], [[0.5]], [[True]], [], [[]], "ab", None]),
        st.builds(np.zeros, st.sampled_from([(2, 3), (2,), (1, 1, 1)]), st.sampled_from(["i4"])),
    ),
    # No huge positive sizes: the kernel would allocate them (it is asked to), not refuse them.
    vocab_size=st.one_of(ODD_ARGS.filter(lambda v: not isinstance(v, int) or v < 2**31)),
    dtype=st.one_of(st.sampled_from(["float32", "uint8", "float16"]), ODD_ARGS),
)
def test_fuzz_onehot_arguments(ids, vocab_size, dtype):
    """The kernel imports only NumPy and numba: it refuses with ValueError / TypeError."""
    from textvae.kernels import onehot

    try:
        onehot(ids, vocab_size, dtype=dtype)
    except (ValueError, TypeError) as err:
        assert str(err), type(err)
        tally("onehot arguments", "refused", str(err))
    else:
        tally("onehot arguments", "ok")


def test_a_batch_larger_than_the_data_costs_only_the_data(world):
    """--batch-size 10**9 allocated a 10**9-row one-hot buffer (MemoryError); a batch holds
    at most the rows of an epoch."""
    from textvae.batching import MemoryOptions, OneHotSequence

    seq = OneHotSequence(str(world.store), batch_size=10**9, memory=MemoryOptions(pool_size=1))
    ids, targets = seq[0]
    assert len(seq) == 1 and ids.shape == (21, 16)
    assert targets["reconstruction"].shape == (21, 16, 12)


def test_sequence_arguments_found_by_the_fuzz(world):
    from textvae.batching.sequence import OneHotSequence
    from textvae.errors import InvalidArgumentError, StoreMismatchError

    with pytest.raises(InvalidArgumentError, match="`split` must be a split name"):
        OneHotSequence(str(world.store), split=np.arange(3))
    with pytest.raises(StoreMismatchError, match="has no split"):
        TokenStore.open(world.store).num_rows(np.arange(3))
    with pytest.raises(InvalidArgumentError, match="`targets` must be one of"):
        OneHotSequence(str(world.store), targets=np.arange(3))
    with pytest.raises(InvalidArgumentError, match="`seed` must be a non-negative integer"):
        OneHotSequence(str(world.store), seed=-1)
