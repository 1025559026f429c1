"""OneHotSequence: batches from a token store into Keras, one batch of memory at a time."""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from textvae._checks import (
    DTYPES,
    TARGETS,
    fraction,
    int_at_least,
    int_in_range,
    one_of,
    positive_int,
)
from textvae.errors import InvalidArgumentError
from textvae.kernels import aligned_empty, onehot
from textvae.store import TokenStore

__all__ = ["OneHotSequence", "chunk_windows", "holdout_rows"]

_UNSET: Any = object()


class _BufferPool:
    """Output buffers handed out again only when nothing outside the pool holds them.

    Each buffer is an aligned view of a raw uint8 allocation; every NumPy view of it (and every
    zero-copy TensorFlow tensor, which keeps the array it wraps alive) references that raw
    owner, so the owner's reference count says whether anyone still holds the memory. A fresh
    1.5 GB buffer costs ~90 ms of page faults here (4x the kernel): recycling avoids that.
    Beyond ``capacity`` buffers it falls back to a fresh, unpooled allocation.

    Each pooled buffer keeps a record of the ids whose ones it holds (-1: an all-zero
    position), so the kernel clears just those cells instead of zeroing gigabytes. Batches
    are handed out read-only, so the record stays true.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, capacity: int) -> None:
        self.shape = shape
        self.dtype = dtype
        self.capacity = capacity
        self._buffers: list[tuple[np.ndarray, np.ndarray]] = []
        self._lock = threading.Lock()
        self._idle_refcount: int | None = None
        self.allocations = 0  # buffers allocated so far, pooled or not (for tests and benchmarks)

    @staticmethod
    def _owner(buf: np.ndarray) -> Any:
        return buf.base if buf.base is not None else buf

    def acquire(self, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(out, previous)``: a C-contiguous (rows, ...) 64-byte-aligned view that nobody else
        holds, and the record of the ids it holds (None for an unpooled buffer)."""
        with self._lock:
            for buf, record in self._buffers:
                if sys.getrefcount(self._owner(buf)) == self._idle_refcount:
                    return buf[:rows], record[:rows]  # the view holds the owner from here on
            buf = aligned_empty(self.shape, self.dtype)
            self.allocations += 1
            if len(self._buffers) >= self.capacity:
                return buf[:rows], None
            buf.reshape(-1).view(np.uint8).fill(0)
            record = np.full(self.shape[:2], -1, dtype=np.int32)
            self._buffers.append((buf, record))
            if self._idle_refcount is None:
                # The same expression as in the loop above, while only the pool holds it.
                for pooled, _ in self._buffers[-1:]:
                    self._idle_refcount = sys.getrefcount(self._owner(pooled))
            return buf[:rows], record[:rows]

    def __len__(self) -> int:
        return len(self._buffers)


class _ChunkCache:
    """A small LRU cache of decompressed token chunks (a shuffled window reuses each one)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: int, load) -> np.ndarray:
        with self._lock:
            if key in self._chunks:
                self._chunks.move_to_end(key)
                return self._chunks[key]
        chunk = load(key)  # outside the lock: decompression runs in parallel across workers
        with self._lock:
            self._chunks[key] = chunk
            self._chunks.move_to_end(key)
            while len(self._chunks) > self.capacity:
                self._chunks.popitem(last=False)
        return chunk


def holdout_rows(num_rows: int, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(num_rows)`` into ``(kept, held_out)`` sorted row indices.

    ``held_out`` is a seeded random ``round(share * num_rows)`` rows (at least one when
    ``share > 0``): the same for a given ``(num_rows, share, seed)`` in every process and
    every resume, so a validation part never leaks into training.
    """
    positive_int("num_rows", num_rows)
    share = fraction("share", share)
    size = max(round(share * num_rows), 1) if share > 0 else 0
    if size >= num_rows:
        raise InvalidArgumentError(
            f"holding out `share`={share} of {num_rows} rows leaves none to keep (in "
            "textvae-train: --val-fraction): use a smaller fraction"
        )
    rng = np.random.default_rng([seed, 0x5E1D])  # a stream of its own, apart from shuffling
    held = np.sort(rng.choice(num_rows, size=size, replace=False))
    keep = np.ones(num_rows, dtype=bool)
    keep[held] = False
    return np.flatnonzero(keep), held


def _membership(row_subset, num_rows: int, split: str) -> np.ndarray:
    index = np.asarray(row_subset)
    if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
        raise InvalidArgumentError(
            "`row_subset` must be a 1-D array of row indices. "
            f"Received: dtype={index.dtype}, shape={index.shape}"
        )
    if index.size and (index.min() < 0 or index.max() >= num_rows):
        raise IndexError(
            f"`row_subset` holds rows outside split {split!r}: valid rows are [0, {num_rows})"
        )
    member = np.zeros(num_rows, dtype=bool)
    member[index.astype(np.int64)] = True
    return member


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or not reported
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.3g} GiB"


def _check_batch_memory(shape: tuple[int, int, int], dtype: np.dtype, batches: int) -> None:
    """Refuse one-hot batches that cannot fit in this machine's memory ``batches`` at a time
    (measured: a slow consumer keeps that many alive), before training starts."""
    memory = _physical_memory()
    size = math.prod(shape) * dtype.itemsize
    if memory is None or size * batches <= memory:
        return
    raise InvalidArgumentError(
        f"one-hot batches of shape {shape} {dtype.name} take {_gib(size)} each and "
        f"up to {batches} are alive at once (max_queue_size + workers + 2): more than this "
        f"machine's {_gib(memory)} of memory. Use targets='sparse' (--targets "
        "sparse), dtype='uint8', or a smaller batch_size or max_queue_size"
    )


def chunk_windows(n_chunks: int, window_chunks: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The chunks of one shuffled epoch, grouped into windows whose rows are shuffled together.

    The chunks are permuted, then cut into ``ceil(n_chunks / window_chunks)`` windows of
    balanced sizes (they differ by one at most). Balanced, because a corpus stored in source
    order is often sorted (IMDB's files: all negative reviews, then all positive): a short last
    window of one or two chunks would end every epoch with batches of a single label, and
    that is enough to collapse a classifier head in its last steps.
    """
    order = rng.permutation(n_chunks)
    return np.array_split(order, -(-n_chunks // window_chunks)) if n_chunks else []


class OneHotSequence(keras.utils.PyDataset):
    """Batches of one split of a token store, as Keras wants them.

    ``seq[i]`` returns ``(ids, {"reconstruction": targets, "sentiment": labels})``: ``ids`` int32
    (batch, max_len); targets the one-hot (batch, max_len, vocab_size) batch in ``dtype`` from
    :func:`textvae.kernels.onehot`, or the int32 ids themselves with ``targets="sparse"`` (for
    ``sparse_categorical_crossentropy``); labels float32 (batch, 1).

    Parameters
    ----------
    store
        Path or URL of a store, or an opened :class:`~textvae.store.TokenStore`. The store is
        (re)opened lazily in each process, so the sequence pickles.
    split
        Which split to serve (``"train"``, ``"test"``, ...).
    batch_size
        Rows per batch. The last partial batch of an epoch is kept (``len(seq)`` counts it)
        unless ``drop_remainder=True``.
    targets
        ``"onehot"`` or ``"sparse"``.
    dtype
        One-hot dtype: ``"float32"``, ``"float16"`` or ``"uint8"``.
    shuffle, seed
        Shuffle rows each epoch, keyed on ``(seed, epoch)``: every worker, process and resume
        gives the same batches. Shuffling is chunk-aware: the chunks are permuted, then rows are
        permuted within windows of at most ``window_chunks`` chunks (balanced sizes: see
        :func:`chunk_windows`), so a batch decompresses at most
        that many chunks (and they are cached while the window lasts). Call
        ``model.fit(seq, shuffle=False)``: Keras' own ``shuffle`` would reorder the batches,
        losing that locality and the (seed, epoch) order.
    shard_index, num_shards
        Serve the ``shard_index``-th of ``num_shards`` disjoint, equally long shares of every
        epoch (one per training process). ``N % num_shards`` rows are left out of each epoch
        (different ones each epoch when shuffled).
    rows
        Use only the first ``rows`` rows of each epoch's order (a fresh random subset each
        epoch when shuffled; the first rows of the split otherwise), before sharding; ``None``
        uses every row. ``textvae-train`` passes ``--train-rows`` / ``--eval-rows`` here.
        (``max_rows``, its old name, still works for one release with a ``DeprecationWarning``.)
    row_subset
        Serve only these rows of the split (indices, e.g. one side of :func:`holdout_rows`);
        shuffling, ``rows`` and sharding then apply to them alone. ``None``: every row.
    reconstruction_name, sentiment_name
        Keys of the targets dict (the model's output names); ``None`` leaves that output out.
    vocab_size, max_len
        What the caller expects of the store; a store built otherwise raises
        :class:`~textvae.errors.StoreMismatchError`.
    pool_size
        Cap on recycled one-hot buffers (0: none recycled); default
        ``max_queue_size + workers + 2``.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``, passed to ``PyDataset``.

    :meth:`from_batch` gives a copy that starts every epoch at a later batch: how
    ``textvae-train --resume`` finishes an epoch it stopped in the middle of.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | TokenStore,
        split: str = "train",
        batch_size: int = 64,
        *,
        targets: str = "onehot",
        dtype: str = "float32",
        shuffle: bool = True,
        seed: int | None = 0,
        drop_remainder: bool = False,
        shard_index: int = 0,
        num_shards: int = 1,
        rows: int | None = None,
        row_subset: np.ndarray | Sequence[int] | None = None,
        window_chunks: int = 16,
        reconstruction_name: str | None = "reconstruction",
        sentiment_name: str | None = "sentiment",
        vocab_size: int | None = None,
        max_len: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        pool_size: int | None = None,
        max_rows: int | None = _UNSET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_rows is not _UNSET:
            warnings.warn(
                "`max_rows` is deprecated, use `rows` (it will be removed in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            if rows is not None:
                raise InvalidArgumentError("pass `rows` only (`max_rows` is its deprecated name)")
            rows = max_rows
        one_of("targets", targets, TARGETS)
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            pass  # not a dtype at all: one_of says what is allowed
        one_of("dtype", dtype, DTYPES)
        positive_int("batch_size", batch_size)
        positive_int("num_shards", num_shards)
        int_in_range("shard_index", shard_index, 0, num_shards)
        if shuffle and seed is None:
            raise InvalidArgumentError(
                "`seed` must be an integer when shuffle=True, so that every worker and every "
                "resume sees the same order. Received: seed=None"
            )
        int_at_least("seed", seed, 0, allow_none=True)
        if not isinstance(split, str):
            raise InvalidArgumentError(f"`split` must be a split name. Received: split={split!r}")
        positive_int("window_chunks", window_chunks)
        positive_int("rows", rows, allow_none=True)
        int_at_least("pool_size", pool_size, 0, allow_none=True)  # 0: recycle nothing
        if reconstruction_name is None and sentiment_name is None:
            raise InvalidArgumentError(
                "at least one of `reconstruction_name` and `sentiment_name` must be given"
            )
        if isinstance(store, TokenStore):
            self._store: TokenStore | None = store
            self.store_path = store.path
        else:
            self._store = None
            self.store_path = os.fspath(store)
        self.split = split
        self.batch_size = batch_size
        self.targets = targets
        self.dtype = dtype
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.shard_index = shard_index
        self.num_shards = num_shards
        self.rows = rows
        self.window_chunks = window_chunks
        self.reconstruction_name = reconstruction_name
        self.sentiment_name = sentiment_name
        self.storage_options = dict(storage_options) if storage_options else None
        self.pool_size = pool_size
        self.epoch = 0
        self.first_batch = 0
        # Validate now (clear errors at construction); per-process state is rebuilt lazily.
        opened = self._open(vocab_size=vocab_size, max_len=max_len)
        self.vocab_size = opened.vocab_size
        self.max_len = opened.max_len
        self.num_rows = opened.num_rows(split)
        self.chunk_rows = opened.chunk_rows(split)
        self._member: np.ndarray | None = None
        available = self.num_rows
        if row_subset is not None:
            self._member = _membership(row_subset, self.num_rows, split)
            available = int(np.count_nonzero(self._member))
        used = available if rows is None else min(rows, available)
        self.rows_per_shard = used // num_shards
        if self.rows_per_shard == 0:
            raise InvalidArgumentError(
                f"split {split!r} has {self.num_rows} rows, fewer than num_shards={num_shards}"
            )
        if targets == "onehot":
            _check_batch_memory(self._batch_shape(), np.dtype(dtype), self._in_flight())
        self._reset_process_state()

    @property
    def store(self) -> TokenStore:
        """The opened :class:`~textvae.store.TokenStore` this sequence reads (in this process)."""
        return self._open()

    @property
    def max_rows(self) -> int | None:
        """Deprecated name of :attr:`rows` (removed in the next release)."""
        warnings.warn("`max_rows` is deprecated, use `rows`", DeprecationWarning, stacklevel=2)
        return self.rows

    # -- per-process state -------------------------------------------------------------------
    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._plan: tuple[int, np.ndarray] | None = None
        self._labels: np.ndarray | None = None
        self._cache = _ChunkCache(2 * self.window_chunks)
        self._pool: _BufferPool | None = None

    def _open(self, **expected: Any) -> TokenStore:
        if self._store is None:
            self._store = TokenStore.open(
                self.store_path,
                split=self.split,
                storage_options=self.storage_options,
                **expected,
            )
        elif expected:
            self._store.check_expected(split=self.split, **expected)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_store", "_lock", "_plan", "_labels", "_cache", "_pool"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._store = None
        self._reset_process_state()

    # -- epochs and plans ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self.batches_per_epoch - self.first_batch

    @property
    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch (``len(seq)`` of a sequence that starts at batch 0)."""
        full, rest = divmod(self.rows_per_shard, self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    def from_batch(self, batch: int) -> OneHotSequence:
        """A copy that serves every epoch from batch ``batch`` on: ``copy[i]`` is
        ``self[batch + i]`` of the same epoch and ``len(copy) == len(self) - batch``.

        This is how a run stopped after ``batch`` batches of an epoch finishes that epoch
        (``model.fit(seq.from_batch(k), initial_epoch=e, epochs=e + 1)``): the batches served
        are exactly those an uninterrupted run would serve next, in the same order. The copy
        opens its own store handle and caches (as after pickling).
        """
        if self.first_batch:
            raise ValueError("`from_batch` applies to a sequence that starts at batch 0")
        int_in_range("batch", batch, 0, self.batches_per_epoch)
        view = copy.copy(self)  # through __getstate__ / __setstate__: fresh per-process state
        view.first_batch = int(batch)
        return view

    def on_epoch_end(self) -> None:
        """Advance to the next epoch. Keras calls this after every epoch, and once more after
        peeking at the first batches before training: to tie fit's epoch k to this sequence's
        epoch k, call :meth:`set_epoch` from a callback's ``on_epoch_begin`` (textvae-train does).

        The buffer pool is let go too: Keras keeps a finished dataset adapter (and so this
        sequence) alive, and its pool would otherwise hold its buffers (GBs) until exit.
        """
        self.epoch += 1
        with self._lock:
            self._pool = None

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s order (e.g. when resuming training at ``initial_epoch``)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise InvalidArgumentError(
                f"`epoch` must be a non-negative integer. Received: epoch={epoch!r}"
            )
        self.epoch = epoch

    def epoch_rows(self, epoch: int | None = None) -> np.ndarray:
        """Row indices this shard serves in ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        with self._lock:
            if self._plan is None or self._plan[0] != epoch:
                self._plan = (epoch, self._shard_rows(epoch))
            return self._plan[1]

    def _shard_rows(self, epoch: int) -> np.ndarray:
        n, c = self.num_rows, self.chunk_rows
        index_dtype = np.int32 if n < 2**31 else np.int64
        if not self.shuffle:
            order = np.arange(n, dtype=index_dtype)
        else:
            rng = np.random.default_rng([self.seed, epoch])
            parts = []
            for window in chunk_windows(-(-n // c), self.window_chunks, rng):
                rows = np.concatenate(
                    [np.arange(k * c, min((k + 1) * c, n), dtype=index_dtype) for k in window]
                )
                parts.append(rng.permutation(rows))
            order = np.concatenate(parts)
        if self._member is not None:
            order = order[self._member[order]]
        start = self.shard_index * self.rows_per_shard
        return order[start : start + self.rows_per_shard]

    # -- batches ------------------------------------------------------------------------------
    def batch_rows(self, index: int) -> np.ndarray:
        """Row indices of batch ``index`` of the current epoch (batch ``first_batch + index``
        of the whole epoch)."""
        n = len(self)
        if not isinstance(index, (int, np.integer)) or not 0 <= index < n:
            raise IndexError(f"batch index {index} is out of range: valid indices are [0, {n})")
        start = (self.first_batch + int(index)) * self.batch_size
        return self.epoch_rows()[start : start + self.batch_size]

    def _read_ids(self, rows: np.ndarray) -> np.ndarray:
        store = self._open()
        c = self.chunk_rows
        ids = np.empty((rows.size, self.max_len), dtype=np.int32)
        chunk_of = rows // c
        for k in np.unique(chunk_of):
            chunk = self._cache.get(
                int(k), lambda k: store.read(self.split, slice(k * c, (k + 1) * c))
            )
            where = np.flatnonzero(chunk_of == k)
            ids[where] = chunk[rows[where] - k * c]
        return ids

    def _read_labels(self, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._labels is None:  # N bytes: 1 MB per million rows
                self._labels = self._open().labels(self.split)
        return self._labels[rows].astype(np.float32).reshape(-1, 1)

    def _batch_shape(self) -> tuple[int, int, int]:
        # A batch never holds more rows than an epoch: a huge batch_size costs nothing extra.
        return (min(self.batch_size, self.rows_per_shard), self.max_len, self.vocab_size)

    def _in_flight(self) -> int:
        """One-hot batches that can be alive at once: Keras' queue, each worker's batch, the
        one the model reads and the next (the pool's default capacity)."""
        return self.max_queue_size + max(self.workers, 1) + 2

    def _onehot(self, ids: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._pool is None:
                capacity = self._in_flight() if self.pool_size is None else self.pool_size
                self._pool = _BufferPool(self._batch_shape(), np.dtype(self.dtype), capacity)
        out, previous = self._pool.acquire(ids.shape[0])
        onehot(ids, self.vocab_size, dtype=self.dtype, out=out, previous=previous)
        batch = out.view()
        batch.flags.writeable = False  # keeps the pool's record of its ones true
        return batch

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rows = self.batch_rows(index)
        ids = self._read_ids(rows)
        outputs: dict[str, np.ndarray] = {}
        if self.reconstruction_name is not None:
            outputs[self.reconstruction_name] = (
                ids if self.targets == "sparse" else self._onehot(ids)
            )
        if self.sentiment_name is not None:
            outputs[self.sentiment_name] = self._read_labels(rows)
        return ids, outputs

    # -- outside fit (textvae/adapters.py) -----------------------------------------------------
    def as_tf_dataset(self) -> Any:
        """A ``tf.data.Dataset`` of this sequence's batches, without a copy: each pass serves
        the current epoch, then advances it. See :func:`textvae.adapters.as_tf_dataset`."""
        from textvae.adapters import as_tf_dataset

        return as_tf_dataset(self)

    def as_torch_dataloader(self, **kwargs: Any) -> Any:
        """A PyTorch ``DataLoader`` of this sequence's batches as tensors sharing its memory
        (``num_workers=0``); ``set_epoch(k)`` before each epoch. See
        :func:`textvae.adapters.torch_dataloader`."""
        from textvae.adapters import torch_dataloader

        return torch_dataloader(self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"OneHotSequence({self.store_path!r}, split={self.split!r}, "
            f"batch_size={self.batch_size}, targets={self.targets!r}, dtype={self.dtype!r}, "
            f"shuffle={self.shuffle}, shard={self.shard_index}/{self.num_shards}, "
            f"batches={len(self)}"
            + (f", first_batch={self.first_batch})" if self.first_batch else ")")
        )
