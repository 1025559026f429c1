"""Helpers for tests (ours and yours): small corpora and stores, slow references, batch checks.

Public so that projects reusing textvae can build the same small fixtures and check the batches
they get: :func:`make_store` builds a small store with the real build function,
:func:`assert_batch_matches_store` checks a batch (NumPy or any backend's tensors) against the
store, element by element, with the slow, obvious references below (the kernels' tests use them
too: one module holds every reference, since the public validator needs them). Imports NumPy at
import time only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TINY_TRAIN_ARGS",
    "WORDS",
    "assert_batch_matches_store",
    "make_store",
    "mask_reference",
    "next_ids_reference",
    "next_mask_reference",
    "onehot_reference",
    "random_reviews",
    "write_jsonl",
]

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


# -- slow, obvious references (the kernels and the Sequence are tested against these) ----------


def onehot_reference(ids: Any, vocab_size: int, dtype: Any = "float32") -> np.ndarray:
    """One-hot of ``ids`` along a new last axis of length ``vocab_size``: zeros, then a 1 at
    each id (memory of the output only, so it also checks full-size batches)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros((*ids.shape, vocab_size), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def mask_reference(lengths: Any, max_len: int, padding: str) -> np.ndarray:
    """Position by position: is it one of the row's real tokens? (float32 (rows, max_len))."""
    out = np.zeros((len(lengths), max_len), dtype=np.float32)
    for r, length in enumerate(lengths):
        real = min(int(length), max_len)
        for t in range(max_len):
            out[r, t] = (t >= max_len - real) if padding == "pre" else (t < real)
    return out


def next_ids_reference(ids: Any, pad_id: int = 0) -> np.ndarray:
    """The id at t + 1 at every position t, ``pad_id`` at the last, by a loop."""
    ids = np.asarray(ids)
    out = np.full(ids.shape, pad_id, dtype=np.int64)
    for r in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            out[r, t] = ids[r, t + 1]
    return out


def next_mask_reference(mask: np.ndarray) -> np.ndarray:
    """1.0 where position t and t + 1 both hold real tokens, by a loop."""
    out = np.zeros_like(mask)
    for r in range(mask.shape[0]):
        for t in range(mask.shape[1] - 1):
            out[r, t] = float(mask[r, t] == 1 and mask[r, t + 1] == 1)
    return out


# -- stores and batches ------------------------------------------------------------------------


def make_store(
    path: str | os.PathLike[str],
    *,
    rows: int | Mapping[str, int] = 40,
    vocab_size: int = 12,
    max_len: int = 16,
    num_classes: int | None = 2,
    chunk_rows: int = 8,
    padding: str = "pre",
    seed: int = 0,
    shard_rows: int | None = None,
) -> Any:
    """A small store of random ids, built with :func:`textvae.build_store_from_ids`.

    Parameters
    ----------
    path
        Where to build it (it must not exist).
    rows
        Rows of a ``"train"`` split, or split name -> rows.
    vocab_size, max_len, chunk_rows, padding, shard_rows
        As for the build function (:class:`~textvae.data.format.StoreSpec`). Rows hold 1 to
        ``max_len + 4`` ids in ``[3, vocab_size)``, so some are padded and some truncated.
    num_classes
        Random labels in ``[0, num_classes)`` (2: binary), or ``None`` for a store without.
    seed
        Seeds the ids and labels.

    Returns
    -------
    TokenStore
        The store, opened.
    """
    from textvae.data import StoreSpec, build_store_from_ids

    spec = StoreSpec(vocab_size, max_len, padding, padding, chunk_rows, shard_rows)
    splits = {"train": rows} if isinstance(rows, int) else dict(rows)
    rng = np.random.default_rng(seed)
    ids = {
        split: [rng.integers(3, vocab_size, size=rng.integers(1, max_len + 5)) for _ in range(n)]
        for split, n in splits.items()
    }
    labels = None
    if num_classes is not None:
        labels = {split: rng.integers(0, num_classes, size=n) for split, n in splits.items()}
    return build_store_from_ids(path, ids, spec, labels=labels, num_classes=num_classes)


#: The text VAE's default layout (a Sequence built with no layout arguments).
_VAE_OUTPUTS = {"reconstruction": "onehot", "sentiment": "binary"}


def _find_rows(split_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    rows = []
    for row in ids:
        matches = np.flatnonzero((split_ids == row).all(axis=1))
        assert matches.size, "a row of the batch is no row of the store"
        rows.append(matches[0])
    return np.asarray(rows)


def assert_batch_matches_store(
    source: Any,
    batch: Any,
    rows: Any = None,
    *,
    split: str | None = None,
    layout: Any = None,
    dtype: str | None = None,
    positions: Sequence[int] | None = None,
) -> None:
    """Assert that ``batch`` holds what the store says ``rows`` should give, element by element.

    Every input, output and sample weight of the layout is recomputed from the store's ids,
    labels and lengths with the slow references above and compared exactly, with its dtype.
    The arrays may be NumPy arrays or any tensors ``np.asarray`` reads (JAX, torch on CPU,
    TensorFlow).

    Parameters
    ----------
    source
        A :class:`~textvae.batching.OneHotSequence` (its store, split, layout and dtype are
        used), a :class:`~textvae.data.store.TokenStore` or a store path.
    batch
        ``(x, y)`` or ``(x, y, sample_weight)``, as ``seq[i]`` gives it.
    rows
        The split's rows the batch holds (``seq.batch_rows(i)``); ``None``: the first row of
        the split with each row's ids (a batch from a pipeline that does not say).
    split, layout, dtype
        Override the sequence's; for a store they default to ``"train"``, the text VAE's
        layout (``{"reconstruction": "onehot", "sentiment": "binary"}``) and ``"float32"``.
        A layout's ``target_window`` W is honoured: token outputs and their weights are the
        whole rows' references cut to their last W columns.
    positions
        Check only these rows of the batch (e.g. ``(0, -1)`` for full-size batches).
    """
    from textvae.batching.layout import TOKEN_KINDS, BatchLayout
    from textvae.data.store import TokenStore

    seq = source if hasattr(source, "batch_rows") else None
    if seq is not None:
        store = seq.store
        split = split or seq.split
        layout = layout or seq.layout
        dtype = dtype or seq.dtype
    else:
        store = source if isinstance(source, TokenStore) else TokenStore.open(source)
        split = split or "train"
        layout = layout or BatchLayout(outputs=_VAE_OUTPUTS)
        dtype = dtype or "float32"
    assert len(batch) == (3 if layout.sample_weight else 2), f"{len(batch)} elements"
    x, y = batch[0], batch[1]
    pick = slice(None) if positions is None else list(positions)
    x_ids = _ids_input(x, layout)
    if x_ids is not None:
        x_ids = np.asarray(x_ids)[pick]
    if rows is None:
        assert x_ids is not None, "pass `rows`: the batch has no ids input to find them by"
        rows = _find_rows(store.read(split, slice(None)), x_ids)
    else:
        rows = np.asarray(rows)[pick]
    ids = store.read(split, rows).astype(np.int64)
    mask = mask_reference(store.lengths(split, rows), store.max_len, store.padding)
    labels = store.labels(split, rows) if layout.needs_labels else None
    if x_ids is not None:
        np.testing.assert_array_equal(x_ids, ids, err_msg="ids")
    if isinstance(layout.inputs, Mapping):
        assert list(x) == list(layout.inputs), f"inputs {list(x)}"
        for name, kind in layout.inputs.items():
            want = ids if kind == "ids" else mask
            np.testing.assert_array_equal(np.asarray(x[name])[pick], want, err_msg=name)
    named = {None: layout.outputs} if isinstance(layout.outputs, str) else dict(layout.outputs)
    got_y = {None: y} if isinstance(layout.outputs, str) else y
    assert list(got_y) == list(named), f"outputs {list(got_y)}"
    # The target window's columns of a token output (every column without a window).
    window = slice(store.max_len - (layout.target_window or store.max_len), None)
    for name, kind in named.items():
        got = np.asarray(got_y[name])[pick]
        want_dtype = {"onehot": dtype, "next_onehot": dtype, "binary": "float32"}.get(kind, "int32")
        assert got.dtype == np.dtype(want_dtype), f"{name}: {got.dtype}, not {want_dtype}"
        want = _expected_output(kind, ids, labels, store, dtype)
        if kind in TOKEN_KINDS:
            want = want[:, window]
        np.testing.assert_array_equal(got, want, err_msg=f"output {name!r} ({kind})")
        if layout.sample_weight:
            weights = np.asarray(batch[2] if name is None else batch[2][name])[pick]
            assert weights.dtype == np.float32, f"weights of {name}: {weights.dtype}"
            if kind.startswith("next_"):
                want = next_mask_reference(mask)
            elif kind in ("onehot", "sparse"):
                want = mask
            else:
                want = (labels >= 0).astype(np.float32)
            if kind in TOKEN_KINDS:
                want = want[:, window]
            np.testing.assert_array_equal(weights, want, err_msg=f"weights of {name!r}")


def _ids_input(x: Any, layout: Any) -> Any:
    """The batch's ids input (``None`` when the layout has none)."""
    if layout.inputs is None:
        return x
    if isinstance(layout.inputs, str):
        assert list(x) == [layout.inputs], f"inputs {list(x)}"
        return x[layout.inputs]
    names = [name for name, kind in layout.inputs.items() if kind == "ids"]
    return x[names[0]] if names else None


def _expected_output(
    kind: str, ids: np.ndarray, labels: np.ndarray | None, store: Any, dtype: str
) -> np.ndarray:
    if kind in ("onehot", "next_onehot"):
        source = ids if kind == "onehot" else next_ids_reference(ids, store.pad_id)
        return onehot_reference(source, store.vocab_size, dtype)
    if kind == "sparse":
        return ids
    if kind == "next_sparse":
        return next_ids_reference(ids, store.pad_id)
    assert labels is not None
    return labels.astype(np.float32).reshape(-1, 1) if kind == "binary" else labels
