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
from textvae.batching.layout import (
    NEXT_KINDS,
    TOKEN_KINDS,
    BatchLayout,
    next_token_ids,
    next_token_mask,
    padding_mask,
)
from textvae.data.store import TokenStore
from textvae.errors import InvalidArgumentError, MemoryBudgetWarning, StoreMismatchError
from textvae.kernels import aligned_empty, onehot

__all__ = ["OneHotSequence", "chunk_windows", "default_memory_budget", "holdout_rows"]

_UNSET: Any = object()

#: Keras' own default ``max_queue_size``, kept for batches without one-hot outputs (small).
KERAS_MAX_QUEUE_SIZE = 10


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


def default_memory_budget() -> int:
    """The default ``memory_budget`` of a :class:`OneHotSequence`: a quarter of this machine's
    physical memory (4 GiB where it is not reported)."""
    memory = _physical_memory()
    return 4 * 2**30 if memory is None else memory // 4


def _default_queue_size(batch_bytes: int, budget: int, workers: int) -> int:
    """The largest ``max_queue_size`` (1 to Keras' 10) whose batches in flight,
    ``max_queue_size + workers + 2``, fit in ``budget`` bytes; 1 when none does."""
    fits = budget // batch_bytes - max(workers, 1) - 2
    return int(min(max(fits, 1), KERAS_MAX_QUEUE_SIZE))


def _onehot_arithmetic(
    shape: tuple[int, int, int], dtype: np.dtype, arrays: int, queue: int, workers: int
) -> tuple[int, int, str]:
    """``(bytes a batch's one-hot arrays take, batches in flight, the sum in words)``."""
    size = math.prod(shape) * dtype.itemsize * arrays
    batches = queue + max(workers, 1) + 2
    what = f"{arrays} one-hot arrays" if arrays > 1 else "one-hot batches"
    words = (
        f"{what} of shape {shape} {dtype.name} take {_gib(size)} a batch and up to {batches} "
        f"batches are alive at once (max_queue_size={queue} + workers={max(workers, 1)} + 2: "
        "Keras' queue, the batches being built, the one being trained on and the next): "
        f"{batches} x {_gib(size)} = {_gib(size * batches)}"
    )
    return size, batches, words


_FIXES = (
    "Use dtype='uint8' (a quarter of float32's bytes), sparse targets ('sparse' / "
    "'next_sparse', --targets sparse), a smaller batch_size, fewer workers or a smaller "
    "max_queue_size"
)


def _check_batch_memory(
    shape: tuple[int, int, int], dtype: np.dtype, arrays: int, queue: int, workers: int
) -> None:
    """Refuse one-hot batches that cannot fit in this machine's memory as many at a time as
    can be in flight (measured: a slow consumer keeps that many alive), before training."""
    memory = _physical_memory()
    size, batches, words = _onehot_arithmetic(shape, dtype, arrays, queue, workers)
    if memory is None or size * batches <= memory:
        return
    raise InvalidArgumentError(
        f"{words}: more than this machine's {_gib(memory)} of memory. {_FIXES}"
    )


def _warn_over_budget(
    shape: tuple[int, int, int],
    dtype: np.dtype,
    arrays: int,
    queue: int,
    workers: int,
    budget: int,
) -> None:
    size, batches, words = _onehot_arithmetic(shape, dtype, arrays, queue, workers)
    if size * batches <= budget:
        return
    warnings.warn(
        f"{words}, more than memory_budget={budget:,} bytes ({_gib(budget)}; the default is a "
        f"quarter of this machine's memory). {_FIXES}, or pass a larger memory_budget",
        MemoryBudgetWarning,
        stacklevel=3,
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

    By default ``seq[i]`` returns ``(ids, {"reconstruction": targets, "sentiment": labels})``:
    ``ids`` int32 (batch, max_len); targets the one-hot (batch, max_len, vocab_size) batch in
    ``dtype`` from :func:`textvae.kernels._onehot`, or the int32 ids themselves with
    ``targets="sparse"`` (for ``sparse_categorical_crossentropy``); labels float32 (batch, 1).
    ``inputs``, ``outputs`` and ``sample_weight`` give any other layout (see
    :class:`~textvae.batching.layout.BatchLayout`)::

        OneHotSequence(store, inputs="tokens", outputs={"lm": "next_onehot", "label": "classes"},
                       sample_weight="mask")[i]
        # ({"tokens": ids}, {"lm": (batch, max_len, vocab) float32, "label": (batch,) int32},
        #  {"lm": (batch, max_len) float32 mask, "label": (batch,) float32})

    Every one-hot array (``"onehot"``, ``"next_onehot"``) comes from the kernel into a recycled,
    64-byte-aligned buffer handed out read-only (zero-copy into TensorFlow).

    Parameters
    ----------
    store
        Path or URL of a store, or an opened :class:`~textvae.data.store.TokenStore`. The store is
        (re)opened lazily in each process, so the sequence pickles.
    split
        Which split to serve (``"train"``, ``"test"``, ...).
    batch_size
        Rows per batch. The last partial batch of an epoch is kept (``len(seq)`` counts it)
        unless ``drop_remainder=True``.
    inputs
        ``None`` (default): ``x`` is the bare ids array. An input name: ``x`` is
        ``{name: ids}``. A dict of input names to kinds, ``"ids"`` or ``"mask"`` (the padding
        mask, float32 (batch, max_len)): ``x`` is that dict of arrays.
    outputs
        One output kind, served as a bare ``y``, or a dict of output names (the model's
        output layers) to kinds: ``"onehot"``, ``"sparse"``, ``"next_onehot"``,
        ``"next_sparse"`` (target at t = id at t + 1, the pad id at the last position: for
        language models and decoders), ``"binary"`` (float32 (batch, 1)) or ``"classes"``
        (int32 (batch,)). ``None`` (default): ``{reconstruction_name: targets,
        sentiment_name: "binary"}``, the text VAE's layout.
    sample_weight
        ``"mask"``: add Keras' third element, keyed like ``y``: float32 (batch, max_len), 1.0 at
        real tokens (from the stored lengths, honouring the store's padding side and
        truncation), for next-token outputs 1.0 where the position and its target both hold
        real tokens; for label outputs float32 (batch,), 0.0 for unlabelled rows (label -1).
        ``None`` (default): ``(x, y)``.
    targets
        ``"onehot"`` or ``"sparse"``: the reconstruction output's kind when ``outputs`` is not
        given (default ``"onehot"``).
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
        Keys of the targets dict when ``outputs`` is not given (defaults ``"reconstruction"``,
        ``"sentiment"``); ``None`` leaves that output out.
    vocab_size, max_len
        What the caller expects of the store; a store built otherwise raises
        :class:`~textvae.errors.StoreMismatchError`.
    pool_size
        Cap on recycled one-hot buffers (0: none recycled); default the buffers that can be
        in flight: ``(max_queue_size + workers + 2)`` times the one-hot outputs of a batch.
    memory_budget
        Bytes of one-hot batches that may be alive at once (default
        :func:`default_memory_budget`, a quarter of physical memory). With one-hot outputs and
        no ``max_queue_size`` given, the queue is the largest (1 to Keras' 10) whose batches
        in flight, ``max_queue_size + workers + 2``, fit in it; a configuration that exceeds it
        warns once (:class:`~textvae.errors.MemoryBudgetWarning`) with the arithmetic, one
        that exceeds physical memory is refused.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``, passed to ``PyDataset``.
        ``max_queue_size`` defaults to Keras' 10 without one-hot outputs.

    Epochs follow ``model.fit``'s on their own: the sequence serves its ``epoch`` (0 at
    first), and advances when Keras ends an epoch it began and read to its last batch (see
    :meth:`on_epoch_end`), so ``model.fit(seq, epochs=3)`` trains on epochs 0, 1 and 2's
    orders. To start elsewhere (resuming at ``initial_epoch``) call :meth:`set_epoch`, or pass
    :class:`~textvae.training.callbacks.EpochSync`, which pins fit's epoch k to the sequence's epoch k.

    :meth:`from_batch` gives a copy that starts every epoch at a later batch: how
    ``textvae-train --resume`` finishes an epoch it stopped in the middle of.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | TokenStore,
        split: str = "train",
        batch_size: int = 64,
        *,
        inputs: str | Mapping[str, str] | None = None,
        outputs: str | Mapping[str, str] | None = None,
        sample_weight: str | None = None,
        targets: str = _UNSET,
        dtype: str = "float32",
        shuffle: bool = True,
        seed: int | None = 0,
        drop_remainder: bool = False,
        shard_index: int = 0,
        num_shards: int = 1,
        rows: int | None = None,
        row_subset: np.ndarray | Sequence[int] | None = None,
        window_chunks: int = 16,
        reconstruction_name: str | None = _UNSET,
        sentiment_name: str | None = _UNSET,
        vocab_size: int | None = None,
        max_len: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        pool_size: int | None = None,
        memory_budget: int | None = None,
        max_rows: int | None = _UNSET,
        **kwargs: Any,
    ) -> None:
        queue_given = "max_queue_size" in kwargs
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
        targets, reconstruction_name, sentiment_name, outputs = _legacy_outputs(
            outputs, targets, reconstruction_name, sentiment_name
        )
        self.layout = BatchLayout(inputs=inputs, outputs=outputs, sample_weight=sample_weight)
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
        positive_int("memory_budget", memory_budget, allow_none=True)
        if isinstance(store, TokenStore):
            self._store: TokenStore | None = store
            self.store_path = store.path
        else:
            self._store = None
            self.store_path = os.fspath(store)
        self.split = split
        self.batch_size = batch_size
        self.inputs = self.layout.inputs
        self.outputs = self.layout.outputs
        self.sample_weight = sample_weight
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
        self.memory_budget = default_memory_budget() if memory_budget is None else memory_budget
        self.epoch = 0
        self.first_batch = 0
        # Validate now (clear errors at construction); per-process state is rebuilt lazily.
        opened = self._open(vocab_size=vocab_size, max_len=max_len)
        self.vocab_size = opened.vocab_size
        self.max_len = opened.max_len
        self.num_rows = opened.num_rows(split)
        self.chunk_rows = opened.chunk_rows(split)
        self.padding = opened.padding
        self.pad_id = opened.pad_id
        if self.layout.needs_labels:
            _check_labels(opened, split, self.layout)
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
        arrays = self.layout.onehot_outputs
        if arrays:
            shape, one = self._batch_shape(), np.dtype(dtype)
            if not queue_given:
                batch_bytes = math.prod(shape) * one.itemsize * arrays
                self.max_queue_size = _default_queue_size(
                    batch_bytes, self.memory_budget, self.workers
                )
            _check_batch_memory(shape, one, arrays, self.max_queue_size, self.workers)
            _warn_over_budget(
                shape, one, arrays, self.max_queue_size, self.workers, self.memory_budget
            )
        self._reset_process_state()

    @property
    def store(self) -> TokenStore:
        """The opened :class:`~textvae.data.store.TokenStore` this sequence reads (in this process)."""
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
        self._lengths: np.ndarray | None = None
        self._cache = _ChunkCache(2 * self.window_chunks)
        self._pool: _BufferPool | None = None
        # What this process saw of the epoch Keras began last (see on_epoch_end).
        self._epoch_open = False
        self._served_any = False
        self._served_last = False

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
        for key in ("_store", "_lock", "_plan", "_labels", "_lengths", "_cache", "_pool"):
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

    def on_epoch_begin(self) -> None:
        """Keras begins an epoch (its adapter calls this before the epoch's batches): start
        noting which batches this process serves, for :meth:`on_epoch_end`."""
        self._epoch_open = True
        self._served_any = self._served_last = False

    def on_epoch_end(self) -> None:
        """Advance to the next epoch when the one ending was served: Keras began it and this
        process served its last batch (or no batch at all: worker processes served them).

        Keras 3 also ends epochs it never served: before ``fit``'s first epoch it peeks at
        batches (TensorFlow: ``seq[0]``, ``seq[1]``, without beginning an epoch; JAX and
        torch, for a model not yet built: it begins one, takes one batch and ends it); those
        do not count, so ``model.fit(seq, epochs=3)`` serves epochs 0, 1 and 2. (With several
        thread or process workers on JAX and torch, Keras' enqueuer keeps the batches prefetched
        during that peek and serves them first in epoch 0: pass ``workers=1`` there, or build
        the model before ``fit``.) :class:`~textvae.training.callbacks.EpochSync` pins fit's epoch k to
        epoch k whatever happened before (resuming at ``initial_epoch``).

        The buffer pool is let go too: Keras keeps a finished dataset adapter (and so this
        sequence) alive, and its pool would otherwise hold its buffers (GBs) until exit.
        """
        if self._epoch_open and (self._served_last or not self._served_any):
            self.epoch += 1
        self._epoch_open = False
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
        return self._labels[rows]

    def _read_lengths(self, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._lengths is None:  # 4N bytes: 4 MB per million rows
                self._lengths = self._open().lengths(self.split)
        return self._lengths[rows]

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
                capacity = (
                    self._in_flight() * self.layout.onehot_outputs
                    if self.pool_size is None
                    else self.pool_size
                )
                self._pool = _BufferPool(self._batch_shape(), np.dtype(self.dtype), capacity)
        out, previous = self._pool.acquire(ids.shape[0])
        onehot(ids, self.vocab_size, dtype=self.dtype, out=out, previous=previous)
        batch = out.view()
        batch.flags.writeable = False  # keeps the pool's record of its ones true
        return batch

    def __getitem__(self, index: int) -> tuple:
        """Batch ``index`` of the current epoch: ``(x, y)``, or ``(x, y, sample_weight)`` with
        ``sample_weight="mask"``; each a bare NumPy array or a dict of them (see the class
        docstring)."""
        rows = self.batch_rows(index)
        batch = _Batch(self, rows, self._read_ids(rows))
        layout = self.layout
        if isinstance(layout.inputs, str):
            x: Any = {layout.inputs: batch.ids}
        elif layout.inputs is None:
            x = batch.ids
        else:
            x = {name: batch.input(kind) for name, kind in layout.inputs.items()}
        if isinstance(layout.outputs, str):
            y: Any = batch.output(layout.outputs)
            weights: Any = batch.weight(layout.outputs) if layout.sample_weight else None
        else:
            y = {name: batch.output(kind) for name, kind in layout.outputs.items()}
            weights = (
                {name: batch.weight(kind) for name, kind in layout.outputs.items()}
                if layout.sample_weight
                else None
            )
        self._served_any = True
        if index == len(self) - 1:
            self._served_last = True
        return (x, y) if weights is None else (x, y, weights)

    # -- outside fit (textvae/adapters.py) -----------------------------------------------------
    def as_tf_dataset(self) -> Any:
        """A ``tf.data.Dataset`` of this sequence's batches, without a copy: each pass serves
        the current epoch, then advances it. See :func:`textvae.batching.adapters.as_tf_dataset`."""
        from textvae.batching.adapters import as_tf_dataset

        return as_tf_dataset(self)

    def as_torch_dataloader(self, **kwargs: Any) -> Any:
        """A PyTorch ``DataLoader`` of this sequence's batches as tensors sharing its memory
        (``num_workers=0``); ``set_epoch(k)`` before each epoch. See
        :func:`textvae.batching.adapters.torch_dataloader`."""
        from textvae.batching.adapters import torch_dataloader

        return torch_dataloader(self, **kwargs)

    def __repr__(self) -> str:
        what = (
            f"targets={self.targets!r}"
            if self.reconstruction_name is not None or self.sentiment_name is not None
            else self.layout.describe()
        )
        return (
            f"OneHotSequence({self.store_path!r}, split={self.split!r}, "
            f"batch_size={self.batch_size}, {what}, dtype={self.dtype!r}, "
            f"shuffle={self.shuffle}, shard={self.shard_index}/{self.num_shards}, "
            f"batches={len(self)}"
            + (f", first_batch={self.first_batch})" if self.first_batch else ")")
        )


class _Batch:
    """The arrays of one batch, each computed once when a layout first asks for it."""

    def __init__(self, seq: OneHotSequence, rows: np.ndarray, ids: np.ndarray) -> None:
        self.seq = seq
        self.rows = rows
        self.ids = ids
        self._next_ids: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def next_ids(self) -> np.ndarray:
        if self._next_ids is None:
            self._next_ids = next_token_ids(self.ids, self.seq.pad_id)
        return self._next_ids

    def mask(self) -> np.ndarray:
        if self._mask is None:
            seq = self.seq
            self._mask = padding_mask(seq._read_lengths(self.rows), seq.max_len, seq.padding)
        return self._mask

    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = self.seq._read_labels(self.rows)
        return self._labels

    def input(self, kind: str) -> np.ndarray:
        return self.ids if kind == "ids" else self.mask()

    def output(self, kind: str) -> np.ndarray:
        if kind == "onehot":
            return self.seq._onehot(self.ids)
        if kind == "sparse":
            return self.ids
        if kind == "next_onehot":
            return self.seq._onehot(self.next_ids())
        if kind == "next_sparse":
            return self.next_ids()
        if kind == "binary":
            return self.labels().astype(np.float32).reshape(-1, 1)
        return self.labels().astype(np.int32)  # "classes"

    def weight(self, kind: str) -> np.ndarray:
        if kind in NEXT_KINDS:
            return next_token_mask(self.mask())
        if kind in TOKEN_KINDS:
            return self.mask()
        return (self.labels() >= 0).astype(np.float32)


def _legacy_outputs(
    outputs: Any, targets: Any, reconstruction_name: Any, sentiment_name: Any
) -> tuple[str | None, str | None, str | None, Any]:
    """``(targets, reconstruction_name, sentiment_name, outputs)``: the older arguments mapped
    onto ``outputs`` (``{reconstruction_name: targets, sentiment_name: "binary"}``) when it is
    not given; refused beside it."""
    given = [
        name
        for name, value in (
            ("targets", targets),
            ("reconstruction_name", reconstruction_name),
            ("sentiment_name", sentiment_name),
        )
        if value is not _UNSET
    ]
    if outputs is not None:
        if given:
            raise InvalidArgumentError(
                f"pass `outputs` or {', '.join(f'`{g}`' for g in given)}, not both: `outputs` "
                "names every output and its kind, e.g. outputs={'reconstruction': 'onehot', "
                "'sentiment': 'binary'}"
            )
        return None, None, None, outputs
    targets = "onehot" if targets is _UNSET else targets
    reconstruction_name = "reconstruction" if reconstruction_name is _UNSET else reconstruction_name
    sentiment_name = "sentiment" if sentiment_name is _UNSET else sentiment_name
    one_of("targets", targets, TARGETS)
    if reconstruction_name is None and sentiment_name is None:
        raise InvalidArgumentError(
            "at least one of `reconstruction_name` and `sentiment_name` must be given"
        )
    if reconstruction_name is not None and reconstruction_name == sentiment_name:
        raise InvalidArgumentError(
            "`reconstruction_name` and `sentiment_name` must differ (they key one dict). "
            f"Received: both {reconstruction_name!r}"
        )
    legacy = {reconstruction_name: targets, sentiment_name: "binary"}
    return (
        targets,
        reconstruction_name,
        sentiment_name,
        {name: kind for name, kind in legacy.items() if name is not None},
    )


def _check_labels(store: TokenStore, split: str, layout: BatchLayout) -> None:
    """Refuse label outputs the store cannot give (format-1 stores are binary)."""
    num_classes = store.num_classes
    if not store.has_labels:
        raise StoreMismatchError(
            f"outputs {layout.outputs!r} ask for labels, but the store {store.path} has none "
            f"(split {split!r}): leave out the 'binary' and 'classes' outputs, or build the "
            "store with labels"
        )
    if "binary" in layout.label_kinds() and num_classes != 2:
        raise StoreMismatchError(
            f"a 'binary' output needs a store with 2 classes; {store.path} has "
            f"num_classes={num_classes}: use 'classes' (int32 class ids, for "
            "sparse_categorical_crossentropy)"
        )
