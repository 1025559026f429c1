"""Fuzz of a store's metadata and arrays: one damage per example, then the store opened,
read through the Sequence and given to textvae-train; a damaged store never opens as valid.
Beside the fuzz, the damages it found, kept as plain tests."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import zarr
from fuzz_harness import (
    Reached,
    World,
    check_outcome,
    example_dir,
    make_path,
    run_command,
    stop_at_model,
    tally,
)
from fuzz_strategies import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from textvae.cli import train_main
from textvae.data.store import TokenStore
from textvae.errors import StoreFormatError, TextVAEError

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


_META_KEYS = [
    "format",
    "vocab_size",
    "max_len",
    "pad_id",
    "start_id",
    "oov_id",
    "padding",
    "truncating",
    "splits",
    "source",
    "complete",
]
_ORIGINAL_ATTRS = {
    "format": 1,
    "vocab_size": 12,
    "max_len": 16,
    "pad_id": 0,
    "start_id": 1,
    "oov_id": 2,
    "padding": "pre",
    "truncating": "pre",
    "splits": ["train", "test"],
    "complete": True,
}
ODD_VALUES = st.sampled_from(
    [None, "", "12", 12.5, -1, 0, 3, 2**40, True, [], ["train"], {"a": 1}, "pre", "train", 16]
)


@st.composite
def damages(draw) -> tuple[str, Callable[[zarr.Group], None], bool]:
    """``(name, damage(group), bad)``: one change to a store; ``bad`` unless it is harmless
    (the ``source`` text, or a value set to what it already was; ``damage`` returns False when
    it left the metadata as it was)."""
    kind = draw(st.sampled_from(["meta-value", "meta-drop", "meta-type", "array", "json"]))
    if kind == "meta-value":
        key = draw(st.sampled_from(_META_KEYS))
        value = draw(ODD_VALUES)

        def change(group, key=key, value=value):
            group.attrs["textvae"] = {**group.attrs["textvae"], key: value}

        original = _ORIGINAL_ATTRS.get(key)
        harmless = key == "source" or (type(original) is type(value) and original == value)
        harmless = harmless or (key == "splits" and value == ["train"])  # a store of one split
        return f"attrs[{key}]={value!r}", change, not harmless
    if kind == "meta-drop":
        key = draw(st.sampled_from(_META_KEYS))

        def drop(group, key=key):
            group.attrs["textvae"] = {k: v for k, v in group.attrs["textvae"].items() if k != key}

        return f"attrs without {key}", drop, key != "source"
    if kind == "meta-type":
        value = draw(st.sampled_from([None, [], "textvae", 1, {"format": 1}]))

        def replace(group, value=value):
            group.attrs["textvae"] = value

        return f"attrs = {value!r}", replace, True
    if kind == "array":
        path = draw(
            st.sampled_from(["vocab", "train/tokens", "train/labels", "train/lengths", "test"])
        )
        shape = draw(st.sampled_from(["same", "short", "2-d", "1-d", "group"]))
        dtype = draw(st.sampled_from(["same", "int64", "float32", "str", "uint32"]))

        def swap(group, path=path, shape=shape, dtype=dtype):
            old = group[path]
            if shape == "group" or not isinstance(old, zarr.Array):
                del group[path]
                group.create_group(path)
                return
            shapes = {
                "same": old.shape,
                "short": (max(old.shape[0] - 1, 0), *old.shape[1:]),
                "2-d": (old.shape[0], 3),
                "1-d": (old.shape[0],),
            }
            new_dtype = old.dtype if dtype == "same" else (str if dtype == "str" else dtype)
            del group[path]
            fresh = group.create_array(path, shape=shapes[shape], dtype=new_dtype)
            if new_dtype is str:
                fresh[...] = np.full(shapes[shape], "w", dtype=object)
            # The same shape and dtype: the metadata is as it was (only the values are lost).
            return shapes[shape] != old.shape or dtype != "same"

        return f"{path}: shape {shape}, dtype {dtype}", swap, True
    # The JSON metadata file of the group or of an array, overwritten.
    target = draw(st.sampled_from(["zarr.json", "vocab/zarr.json", "train/tokens/zarr.json"]))
    body = draw(st.sampled_from([b"", b"{", b"[]", b'{"zarr_format": 2}', b"\xff"]))

    def overwrite(group, target=target, body=body):
        Path(group.store.root, target).write_bytes(body)

    return f"{target} = {body!r}", overwrite, True


@pytest.mark.slow
@fuzz_settings(80)
@given(damage=damages())
def test_fuzz_store_metadata(world, damage):
    from textvae.batching.sequence import OneHotSequence

    name, change, bad = damage
    with example_dir(world.root) as where:
        path = Path(make_path("store", where, world))
        bad = change(zarr.open_group(path, mode="r+")) is not False and bad
        try:
            store = TokenStore.open(path)
            store.vocab  # noqa: B018  (read: a damaged vocabulary is found here at the latest)
            seq = OneHotSequence(store, "train", 4, seed=0)
            seq[0]
            seq[len(seq) - 1]
        except TextVAEError as err:
            assert "\n" not in str(err)
            tally("store metadata", "refused", str(err))
        else:
            assert not bad, f"{name}: a damaged store opened as valid"
            tally("store metadata", "ok")
        code, _, err = _train_on(world, path, where)
        if code is not None:
            check_outcome("store metadata (textvae-train)", code, err)


def _train_on(world: World, store: Path, where: Path) -> tuple[int | None, str, str]:
    """textvae-train on ``store`` up to the model; code None when it got there."""
    argv = ["--data", str(store), "--out", str(where / "run"), "--vocab", "12", "--max-len", "16"]
    with (
        mock.patch.dict(os.environ, {"TEXTVAE_CACHE": str(world.cache)}),
        stop_at_model(),
    ):
        try:
            return run_command(train_main, argv, where)
        except Reached:
            return None, "", ""


STORE_CASES = {
    "vocab_size-float": (lambda g: _set_attr(g, "vocab_size", 12.5), "vocab_size=12.5"),
    "vocab_size-text": (lambda g: _set_attr(g, "vocab_size", "12"), "vocab_size='12'"),
    "format-true": (lambda g: _set_attr(g, "format", True), "format True"),
    "padding-unknown": (lambda g: _set_attr(g, "padding", "middle"), "padding='middle'"),
    "splits-a-string": (lambda g: _set_attr(g, "splits", "train"), "splits='train'"),
    "no-pad_id": (lambda g: _set_attr(g, "pad_id", None), "pad_id=None"),
    "labels-a-group": (
        lambda g: (g.__delitem__("train/labels"), g.create_group("train/labels")),
        "is a Group, not an array",
    ),
    "lengths-float": (
        lambda g: g.create_array("train/lengths", shape=(21,), dtype="f4", overwrite=True),
        "float32",
    ),
    "vocab-metadata-garbage": (
        lambda g: Path(g.store.root, "vocab", "zarr.json").write_bytes(b"\xff"),
        "the metadata of the 'vocab' array is unreadable",
    ),
}


def _set_attr(group: zarr.Group, key: str, value) -> None:
    group.attrs["textvae"] = {**group.attrs["textvae"], key: value}


@pytest.mark.parametrize("case", STORE_CASES, ids=list(STORE_CASES))
def test_store_damage_found_by_the_fuzz(world, tmp_path, case):
    damage, message = STORE_CASES[case]
    path = make_path("store", tmp_path, world)
    damage(zarr.open_group(path, mode="r+"))
    with pytest.raises(StoreFormatError, match=re.escape(message)):
        TokenStore.open(path)
    code, _, err = _train_on(world, Path(path), tmp_path)
    assert message in check_outcome("regressions", code, err)
