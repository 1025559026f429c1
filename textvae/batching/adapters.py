"""A Sequence's batches outside ``model.fit``: one verb per hand-off, as Keras' data adapters.

- :func:`as_numpy_iterator`: the current epoch's NumPy batches (built ahead in threads);
- :func:`as_tf_dataset`: a ``tf.data.Dataset``;
- :func:`as_torch_dataloader`: a PyTorch ``DataLoader`` whose collate function is
  :func:`batch_to_torch` (one batch's arrays to tensors).

The last two hand over the Sequence's own memory, without a copy: ``tf.data.Dataset.from_generator``
wraps a 64-byte-aligned NumPy array (the one-hot buffers are aligned) and ``torch.from_numpy``
shares an array's memory. Either way the tensor keeps the array it wraps alive, so the
Sequence's buffer pool never recycles a buffer under a batch that is still held.

Errors: a textvae error raised while a batch is read (a damaged chunk: ``StoreCorruptError``)
comes out of :func:`as_numpy_iterator` as itself. ``tf.data`` turns it into a
``tf.errors.UnknownError`` holding its traceback as text, and a PyTorch ``DataLoader`` worker
re-raises it with its traceback as the message: :func:`textvae.errors.unwrap` gives back the
textvae error (its class, its one-line message) in every case, as the commands do.

Any batch layout works: a bare array, or dicts, tuples and lists of arrays nested in any way
(``(x, y)``, ``(x, y, sample_weight)``, ``({"ids": ...}, {"reconstruction": ..., ...})``).
TensorFlow and PyTorch are imported only when these functions are called.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from textvae.errors import InvalidArgumentError

__all__ = [
    "as_numpy_iterator",
    "as_tf_dataset",
    "as_torch_dataloader",
    "batch_spec",
    "batch_to_torch",
]


def _map_leaves(fn: Callable[[Any, str], Any], batch: Any, path: str = "batch") -> Any:
    """``batch`` with ``fn(leaf, path)`` applied to every leaf; dicts keep their keys and
    order, lists become tuples (``tf.data`` nests tuples, not lists)."""
    if isinstance(batch, dict):
        return {k: _map_leaves(fn, v, f"{path}[{k!r}]") for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return tuple(_map_leaves(fn, v, f"{path}[{i}]") for i, v in enumerate(batch))
    return fn(batch, path)


def _array(leaf: Any, path: str) -> np.ndarray:
    if not isinstance(leaf, np.ndarray) or leaf.ndim == 0 or leaf.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"every leaf of a batch must be a NumPy array of numbers with a batch axis. "
            f"Received: {path}={type(leaf).__name__}"
            + (f" of dtype {leaf.dtype}, shape {leaf.shape}" if hasattr(leaf, "dtype") else "")
        )
    return leaf


def batch_spec(batch: Any) -> Any:
    """The ``tf.TensorSpec`` structure of ``batch`` (one ``seq[i]``), batch axis left free.

    Parameters
    ----------
    batch
        A NumPy array or dicts/tuples/lists of them, nested in any way.

    Returns
    -------
    The same structure (lists as tuples) of ``tf.TensorSpec((None, *shape[1:]), dtype)``.
    """
    import tensorflow as tf

    return _map_leaves(
        lambda leaf, path: tf.TensorSpec((None, *_array(leaf, path).shape[1:]), leaf.dtype),
        batch,
    )


def as_numpy_iterator(sequence: Any) -> Iterator[Any]:
    """The sequence's current epoch as NumPy batches, as ``fit`` would read it.

    ``sequence.on_epoch_begin()`` (if it has one), every batch of the current epoch in order,
    then ``sequence.on_epoch_end()`` (which advances a :class:`OneHotSequence` to its next
    epoch when the iterator is read to its end).

    With ``sequence.workers > 1``, that many threads build batches ahead, at most
    ``sequence.max_queue_size`` of them waiting (the kernels release the GIL), as Keras'
    thread workers do. Lists in a batch become tuples.
    """
    begin = getattr(sequence, "on_epoch_begin", None)
    if begin is not None:  # as Keras' adapter does: the Sequence counts a begun, served epoch
        begin()
    n = len(sequence)
    workers = max(int(getattr(sequence, "workers", 1) or 1), 1)
    if workers == 1:
        for i in range(n):
            yield _map_leaves(lambda leaf, _: leaf, sequence[i])
    else:
        ahead = max(int(getattr(sequence, "max_queue_size", 1) or 1), 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="textvae-batches") as pool:
            pending: deque = deque()
            for i in range(n):
                pending.append(pool.submit(sequence.__getitem__, i))
                if len(pending) > ahead:
                    yield _map_leaves(lambda leaf, _: leaf, pending.popleft().result())
            while pending:
                yield _map_leaves(lambda leaf, _: leaf, pending.popleft().result())
    sequence.on_epoch_end()


def as_tf_dataset(sequence: Any) -> Any:
    """A ``tf.data.Dataset`` of the sequence's batches, handed over without a copy.

    Each pass over the dataset serves the sequence's current epoch, batch by batch as
    ``sequence[i]`` gives them, then advances it (``sequence.on_epoch_end()``), as ``fit``
    does; a pass stopped early (``take``) does not advance it (``sequence.set_epoch(k)``
    chooses an epoch). The output signature comes from ``sequence[0]``: any nesting of dicts
    and tuples, the batch axis left free (a last partial batch fits).

    Parameters
    ----------
    sequence
        A :class:`~textvae.batching.sequence.OneHotSequence`, or anything with ``__len__``,
        ``__getitem__``, ``on_epoch_end`` (and optionally ``workers`` / ``max_queue_size``:
        batches are built ahead in that many threads).

    Returns
    -------
    tf.data.Dataset
        Made by ``tf.data.Dataset.from_generator``, which wraps a 64-byte-aligned NumPy array
        (every one-hot batch is) without a copy, with its cardinality set to ``len(sequence)``;
        add ``.prefetch`` / ``.map`` as usual. A textvae error raised while a batch is read
        reaches the loop as ``tf.errors.UnknownError``; ``textvae.errors.unwrap(err)`` gives it
        back.
    """
    import tensorflow as tf

    if len(sequence) == 0:
        raise InvalidArgumentError("the sequence has no batches: nothing to make a dataset of")
    spec = batch_spec(sequence[0])
    dataset = tf.data.Dataset.from_generator(
        lambda: as_numpy_iterator(sequence), output_signature=spec
    )
    # A generator's length is unknown to tf.data: state it, so that `fit` knows an epoch's
    # steps (else it warns that the input "ran out of data" after the first epoch).
    return dataset.apply(tf.data.experimental.assert_cardinality(len(sequence)))


def _tensor(leaf: Any, path: str) -> Any:
    import torch

    array = _array(leaf, path)
    if not array.flags.writeable:
        # The Sequence hands batches out read-only (its pool's record of their ones must stay
        # true); torch has no read-only tensors and warns on every such array. A writable view
        # shares the memory as well, and keeps it out of the pool as long as the tensor lives.
        view = array.view()
        try:
            view.flags.writeable = True
        except ValueError:  # memory that nobody may write (a read-only memmap): copy it
            view = array.copy()
        array = view
    return torch.from_numpy(array)


def batch_to_torch(batch: Any) -> Any:
    """``batch`` with every NumPy array replaced by a ``torch.Tensor`` sharing its memory.

    Use it as a ``DataLoader``'s ``collate_fn`` with ``batch_size=None`` (the Sequence already
    batches): ``DataLoader(seq, batch_size=None, collate_fn=batch_to_torch)``. The tensors share
    the Sequence's recycled buffers: read them, do not write into them in place (a buffer is
    recycled only after every tensor over it is gone). A job of its own beside
    :func:`as_torch_dataloader`: it converts one batch, for a loader you build yourself.
    """
    return _map_leaves(_tensor, batch)


def as_torch_dataloader(sequence: Any, **kwargs: Any) -> Any:
    """A PyTorch ``DataLoader`` of the sequence's batches as tensors sharing their memory:
    ``DataLoader(sequence, batch_size=None, collate_fn=batch_to_torch, **kwargs)``.

    With ``num_workers=0`` (the default) every tensor shares the Sequence's memory; worker
    processes (``num_workers > 0``) pass tensors back through shared memory, a copy. Call
    ``sequence.set_epoch(epoch)`` before each epoch's loop (as with PyTorch's
    ``DistributedSampler.set_epoch``), or give ``model.fit`` the callback
    :class:`textvae.EpochSync` (``sequence``) when Keras' torch backend consumes the loader.
    A worker process re-raises a textvae error with its traceback as the message:
    ``textvae.errors.unwrap(err)`` gives back the one-line error.
    """
    for name in ("batch_size", "collate_fn", "shuffle", "sampler", "batch_sampler"):
        if name in kwargs:
            raise InvalidArgumentError(
                f"`{name}` is set by as_torch_dataloader (the sequence batches and shuffles "
                f"itself). Received: {name}={kwargs[name]!r}"
            )
    import torch.utils.data

    return torch.utils.data.DataLoader(
        sequence, batch_size=None, collate_fn=batch_to_torch, **kwargs
    )
