"""OneHotSequence: batches from a token store into Keras, one batch of memory at a time.

This module is the ``PyDataset`` only: the epoch plan is :mod:`textvae.batching.sampling`, the
recycled buffers and chunk cache :mod:`textvae.batching.buffers`, the memory budget
:mod:`textvae.batching.memory`, what a batch holds :mod:`textvae.batching.layout`, and the
hand-offs outside ``fit`` :mod:`textvae.batching.adapters`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np

from textvae._checks import DTYPES, int_in_range, one_of
from textvae._compat import deprecated
from textvae.batching.buffers import BufferPool, ChunkCache
from textvae.batching.layout import BatchArrays, BatchLayout, Default, legacy_outputs
from textvae.batching.memory import MemoryOptions, default_memory_budget, onehot_queue_size
from textvae.batching.sampling import EpochPlan, SamplingOptions, ShardOptions
from textvae.data.store import TokenStore
from textvae.errors import InvalidArgumentError
from textvae.kernels import onehot

__all__ = ["OneHotSequence"]

#: The options classes, by the keyword that takes them.
_OPTIONS: dict[str, type] = {
    "sampling": SamplingOptions,
    "shards": ShardOptions,
    "memory": MemoryOptions,
}
#: 0.1's flat keywords -> (the options keyword that holds them now, the field).
_FLAT_KEYWORDS = {
    "rows": ("sampling", "rows"),
    "max_rows": ("sampling", "rows"),
    "row_subset": ("sampling", "row_subset"),
    "window_chunks": ("sampling", "window_chunks"),
    "shard_index": ("shards", "shard_index"),
    "num_shards": ("shards", "num_shards"),
    "pool_size": ("memory", "pool_size"),
    "memory_budget": ("memory", "memory_budget"),
}


def _fold_flat_keywords(kwargs: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The options (``given`` where passed, else defaults) with 0.1's flat keywords, popped from
    ``kwargs``, folded in, each with a deprecation warning."""
    fields: dict[str, dict[str, Any]] = {group: {} for group in _OPTIONS}
    for old, (group, field) in _FLAT_KEYWORDS.items():
        if old not in kwargs:
            continue
        value = kwargs.pop(old)
        new = f"OneHotSequence({group}={_OPTIONS[group].__name__}({field}=...))"
        deprecated(f"OneHotSequence({old}=...)", new, stacklevel=4)
        if given[group] is not None:
            raise InvalidArgumentError(
                f"pass `{field}` inside `{group}` only: `{old}` is its deprecated flat form"
            )
        if field in fields[group]:
            raise InvalidArgumentError("pass `rows` only (`max_rows` is its deprecated name)")
        fields[group][field] = value
    options = {}
    for group, cls in _OPTIONS.items():
        value = given[group]
        if value is None:
            value = cls(**fields[group])
        elif not isinstance(value, cls):
            raise InvalidArgumentError(
                f"`{group}` must be a {cls.__name__} or None. Received: {group}={value!r}"
            )
        options[group] = value
    return options


class OneHotSequence(keras.utils.PyDataset):
    """Batches of one split of a token store, as Keras wants them.

    By default ``seq[i]`` returns ``(ids, {"reconstruction": targets, "sentiment": labels})``:
    ``ids`` int32 (batch, max_len); targets the one-hot (batch, max_len, vocab_size) batch in
    ``dtype`` from :func:`textvae.kernels.onehot`, or the int32 ids themselves with
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
    target_window
        ``None`` (default): targets cover every position. An integer W in ``[1, max_len]``:
        every token output (``"onehot"``, ``"sparse"``, ``"next_onehot"``, ``"next_sparse"``,
        the ``targets`` of the default layout) and its ``sample_weight`` cover only the last W
        positions of each row, columns ``[max_len - W, max_len)``: (batch, W, vocab_size)
        one-hot, (batch, W) ids and masks; ``x`` stays whole rows (batch, max_len). For a model
        whose encoder reads more of a review than its decoder reconstructs: under the default
        ``"pre"`` padding and truncation the last positions hold the end of each review. Only
        the window is expanded and the one-hot buffers (and the memory budget) are sized for W,
        so one-hot memory shrinks by ``W / max_len``. A window longer than the store's
        ``max_len``, or one without token outputs, is refused.
    targets
        ``"onehot"`` or ``"sparse"``: the reconstruction output's kind when ``outputs`` is not
        given (default ``"onehot"``).
    dtype
        One-hot dtype: ``"float32"``, ``"float16"`` or ``"uint8"``.
    shuffle, seed
        Shuffle rows each epoch, keyed on ``(seed, epoch)``: every worker, process and resume
        gives the same batches. Shuffling is chunk-aware: the chunks are permuted, then rows are
        permuted within windows of at most ``sampling.window_chunks`` chunks (balanced sizes:
        see :func:`~textvae.batching.sampling.chunk_windows`), so a batch decompresses at most
        that many chunks (and they are cached while the window lasts). Call
        ``model.fit(seq, shuffle=False)``: Keras' own ``shuffle`` would reorder the batches,
        losing that locality and the (seed, epoch) order.
    drop_remainder
        Leave out an epoch's last partial batch.
    reconstruction_name, sentiment_name
        Keys of the targets dict when ``outputs`` is not given (defaults ``"reconstruction"``,
        ``"sentiment"``); ``None`` leaves that output out.
    vocab_size, max_len
        What the caller expects of the store; a store built otherwise raises
        :class:`~textvae.errors.StoreMismatchError`.
    storage_options
        fsspec options of a store on object storage (``s3://...``).
    sampling
        :class:`~textvae.batching.sampling.SamplingOptions`: which rows an epoch serves
        (``rows``, ``row_subset``) and the shuffling window (``window_chunks``). Default: every
        row, windows of 16 chunks.
    shards
        :class:`~textvae.batching.sampling.ShardOptions`: serve the ``shard_index``-th of
        ``num_shards`` disjoint, equally long shares of every epoch (one per training process).
        Default: one shard.
    memory
        :class:`~textvae.batching.memory.MemoryOptions`: the buffer pool's cap (``pool_size``)
        and the bytes of one-hot batches that may be alive at once (``memory_budget``, default
        a quarter of physical memory; it sizes ``max_queue_size`` when that is not given).
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``, passed to ``PyDataset``.
        ``max_queue_size`` defaults to Keras' 10 without one-hot outputs. The flat keywords of
        0.1 (``rows``, ``row_subset``, ``window_chunks``, ``shard_index``, ``num_shards``,
        ``pool_size``, ``memory_budget``, ``max_rows``) still work until 0.3, with a
        :class:`~textvae.errors.TextVAEDeprecationWarning`: they fold into the options above.

    Notes
    -----
    Epochs follow ``model.fit``'s on their own: the sequence serves its ``epoch`` (0 at
    first), and advances when Keras ends an epoch it began and read to its last batch (see
    :meth:`on_epoch_end`), so ``model.fit(seq, epochs=3)`` trains on epochs 0, 1 and 2's
    orders. To start elsewhere (resuming at ``initial_epoch``) call :meth:`set_epoch`, or pass
    :class:`~textvae.training.callbacks.EpochSync`, which pins fit's epoch k to the sequence's
    epoch k.

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
        target_window: int | None = None,
        targets: str = Default("onehot"),
        dtype: str = "float32",
        shuffle: bool = True,
        seed: int | None = 0,
        drop_remainder: bool = False,
        reconstruction_name: str | None = Default("reconstruction"),
        sentiment_name: str | None = Default("sentiment"),
        vocab_size: int | None = None,
        max_len: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        sampling: SamplingOptions | None = None,
        shards: ShardOptions | None = None,
        memory: MemoryOptions | None = None,
        **kwargs: Any,
    ) -> None:
        options = _fold_flat_keywords(
            kwargs, {"sampling": sampling, "shards": shards, "memory": memory}
        )
        queue_given = "max_queue_size" in kwargs
        super().__init__(**kwargs)
        targets, reconstruction_name, sentiment_name, outputs = legacy_outputs(
            outputs, targets, reconstruction_name, sentiment_name
        )
        self.layout = BatchLayout(
            inputs=inputs,
            outputs=outputs,
            sample_weight=sample_weight,
            target_window=target_window,
        )
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            pass  # not a dtype at all: one_of says what is allowed
        one_of("dtype", dtype, DTYPES)
        if not isinstance(split, str):
            raise InvalidArgumentError(f"`split` must be a split name. Received: split={split!r}")
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
        self.target_window = self.layout.target_window
        self.targets = targets
        self.dtype = dtype
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.reconstruction_name = reconstruction_name
        self.sentiment_name = sentiment_name
        self.storage_options = dict(storage_options) if storage_options else None
        self.sampling: SamplingOptions = options["sampling"]
        self.shards: ShardOptions = options["shards"]
        memory = options["memory"]
        if memory.memory_budget is None:
            memory = dataclasses.replace(memory, memory_budget=default_memory_budget())
        self.memory: MemoryOptions = memory
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
        self.layout.check_labels(opened, split)
        self.layout.check_target_window(self.max_len)
        self.plan = EpochPlan(
            self.num_rows,
            self.chunk_rows,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=drop_remainder,
            sampling=self.sampling,
            shards=self.shards,
            split=split,
        )
        if self.layout.onehot_outputs:
            self.max_queue_size = onehot_queue_size(
                self._batch_shape(),
                np.dtype(dtype),
                self.layout.onehot_outputs,
                self.workers,
                self.memory.memory_budget,
                self.max_queue_size if queue_given else None,
            )
        self._reset_process_state()

    @property
    def shard_index(self) -> int:
        """Which share of every epoch this sequence serves (``shards.shard_index``)."""
        return self.shards.shard_index

    @property
    def num_shards(self) -> int:
        """How many shares every epoch is cut into (``shards.num_shards``)."""
        return self.shards.num_shards

    @property
    def rows_per_shard(self) -> int:
        """Rows this sequence serves each epoch."""
        return self.plan.rows_per_shard

    @property
    def store(self) -> TokenStore:
        """The opened :class:`~textvae.data.store.TokenStore` this sequence reads (in this
        process)."""
        return self._open()

    @property
    def max_rows(self) -> int | None:
        """Deprecated: ``sampling.rows``."""
        deprecated("OneHotSequence.max_rows", "OneHotSequence.sampling.rows")
        return self.sampling.rows

    # -- per-process state -------------------------------------------------------------------
    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._plan: tuple[int, np.ndarray] | None = None
        self._labels: np.ndarray | None = None
        self._lengths: np.ndarray | None = None
        self._cache = ChunkCache(2 * self.sampling.window_chunks)
        self._pool: BufferPool | None = None
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
        return self.plan.batches_per_epoch

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
        the model before ``fit``.) :class:`~textvae.training.callbacks.EpochSync` pins fit's
        epoch k to epoch k whatever happened before (resuming at ``initial_epoch``).

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
                self._plan = (epoch, self.plan.epoch_rows(epoch))
            return self._plan[1]

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
        """Shape of one one-hot output: (batch, positions, vocab), the positions being the
        target window's (the pool's buffers and the memory budget are sized on it)."""
        # A batch never holds more rows than an epoch: a huge batch_size costs nothing extra.
        rows = min(self.batch_size, self.rows_per_shard)
        return (rows, self.layout.target_positions(self.max_len), self.vocab_size)

    def _in_flight(self) -> int:
        """One-hot batches that can be alive at once: Keras' queue, each worker's batch, the
        one the model reads and the next (the pool's default capacity)."""
        return self.max_queue_size + max(self.workers, 1) + 2

    def _onehot(self, ids: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._pool is None:
                capacity = (
                    self._in_flight() * self.layout.onehot_outputs
                    if self.memory.pool_size is None
                    else self.memory.pool_size
                )
                self._pool = BufferPool(self._batch_shape(), np.dtype(self.dtype), capacity)
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
        arrays = BatchArrays(
            self._read_ids(rows),
            pad_id=self.pad_id,
            onehot=self._onehot,
            lengths=lambda: self._read_lengths(rows),
            labels=lambda: self._read_labels(rows),
            padding=self.padding,
            target_window=self.target_window,
        )
        batch = self.layout.assemble(arrays)
        self._served_any = True
        if index == len(self) - 1:
            self._served_last = True
        return batch

    # -- outside fit (textvae.batching.adapters) ----------------------------------------------
    def as_numpy_iterator(self) -> Iterator[Any]:
        """This sequence's current epoch as NumPy batches, then the next epoch begins. See
        :func:`textvae.batching.adapters.as_numpy_iterator`."""
        from textvae.batching.adapters import as_numpy_iterator

        return as_numpy_iterator(self)

    def as_tf_dataset(self) -> Any:
        """A ``tf.data.Dataset`` of this sequence's batches, without a copy: each pass serves
        the current epoch, then advances it. See :func:`textvae.batching.adapters.as_tf_dataset`."""
        from textvae.batching.adapters import as_tf_dataset

        return as_tf_dataset(self)

    def as_torch_dataloader(self, **kwargs: Any) -> Any:
        """A PyTorch ``DataLoader`` of this sequence's batches as tensors sharing its memory
        (``num_workers=0``); ``set_epoch(k)`` before each epoch. See
        :func:`textvae.batching.adapters.as_torch_dataloader`."""
        from textvae.batching.adapters import as_torch_dataloader

        return as_torch_dataloader(self, **kwargs)

    def __repr__(self) -> str:
        legacy = self.reconstruction_name is not None or self.sentiment_name is not None
        what = f"targets={self.targets!r}" if legacy else self.layout.describe()
        if legacy and self.target_window is not None:
            what += f", target_window={self.target_window}"
        return (
            f"OneHotSequence({self.store_path!r}, split={self.split!r}, "
            f"batch_size={self.batch_size}, {what}, dtype={self.dtype!r}, "
            f"shuffle={self.shuffle}, shard={self.shard_index}/{self.num_shards}, "
            f"batches={len(self)}"
            + (f", first_batch={self.first_batch})" if self.first_batch else ")")
        )
