"""The memory budget of one-hot batches: how many may be in flight, and the checks before training.

A slow consumer keeps every batch in flight alive (measured: Keras' default queue of 10 and 2
workers pushed (64, 300, 20,000) float32 batches past 9 GB within 14 batches), so the queue is
sized from a budget, a configuration over the budget warns with the arithmetic, and one over
this machine's physical memory is refused before training starts.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textvae._checks import int_at_least, positive_int
from textvae.errors import InvalidArgumentError, MemoryBudgetWarning

__all__ = [
    "KERAS_MAX_QUEUE_SIZE",
    "MemoryOptions",
    "cgroup_memory_limit",
    "default_memory_budget",
    "default_queue_size",
    "memory_limit",
    "onehot_queue_size",
    "physical_memory",
]

#: Keras' own default ``max_queue_size``, kept for batches without one-hot outputs (small).
KERAS_MAX_QUEUE_SIZE = 10

_FIXES = (
    "Use dtype='uint8' (a quarter of float32's bytes), sparse targets ('sparse' / "
    "'next_sparse', --targets sparse), a target_window (one-hot targets for the last positions "
    "only), a smaller batch_size, fewer workers or a smaller max_queue_size"
)


@dataclass(frozen=True)
class MemoryOptions:
    """How much memory a Sequence's one-hot batches may hold (validated at construction).

    Parameters
    ----------
    pool_size
        Cap on recycled one-hot buffers (0: none recycled); ``None`` (default): the buffers
        that can be in flight, ``(max_queue_size + workers + 2)`` times the one-hot outputs of
        a batch.
    memory_budget
        Bytes of one-hot batches that may be alive at once; ``None`` (default):
        :func:`default_memory_budget`, a quarter of the memory this process may use. With
        one-hot outputs and no ``max_queue_size`` given, the queue is the largest (1 to Keras'
        10) whose batches in flight, ``max_queue_size + workers + 2``, fit in it; a
        configuration that exceeds it warns once (:class:`~textvae.errors.MemoryBudgetWarning`)
        with the arithmetic, one that exceeds :func:`memory_limit` is refused.
    """

    pool_size: int | None = None
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        pool = int_at_least("pool_size", self.pool_size, 0, allow_none=True)  # 0: recycle none
        object.__setattr__(self, "pool_size", pool)
        budget = positive_int("memory_budget", self.memory_budget, allow_none=True)
        object.__setattr__(self, "memory_budget", budget)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where it is not reported)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or not reported
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.3g} GiB"


#: A cgroup v1 "no limit" reads as a huge number (2**63 rounded down to a page); anything at or
#: above this is no limit.
_NO_LIMIT = 2**60


def _read_limit(path: Path) -> int | None:
    """The limit in a cgroup file (``memory.max`` or ``memory.limit_in_bytes``), or ``None``
    for no limit, an unreadable file or one that is not there."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max": no limit
        return None
    value = int(text)
    return value if value < _NO_LIMIT else None


def cgroup_memory_limit(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
) -> int | None:
    """Bytes this process may use under its control group's memory limit (Docker
    ``--memory``, Kubernetes limits, SLURM jobs), or ``None`` where none is set or readable.

    Reads cgroup v2's ``memory.max`` and cgroup v1's ``memory.limit_in_bytes`` for this
    process's group and every group above it (a parent's limit binds its children), and
    returns the smallest. Inside a container the group's own path may not be mounted; the
    mount's root then holds the container's limit, and is read too.
    """
    root = Path(root)
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    files: list[Path] = []
    for line in lines:
        _, controllers, group = [*line.split(":", 2), "", ""][:3]
        if controllers == "":  # cgroup v2, unified
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):  # cgroup v1 memory controller
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        where = base / group.strip("/")
        files.extend(
            folder / name for folder in (where, *where.parents) if base in (folder, *folder.parents)
        )
    limits = [limit for limit in map(_read_limit, dict.fromkeys(files)) if limit is not None]
    return min(limits, default=None)


def memory_limit() -> int | None:
    """Bytes of memory this process may use: physical memory or its control group's limit,
    whichever is smaller (``None`` where neither is reported)."""
    known = [m for m in (physical_memory(), cgroup_memory_limit()) if m is not None]
    return min(known, default=None)


def default_memory_budget() -> int:
    """The default ``memory_budget`` of a :class:`OneHotSequence`: a quarter of the memory
    this process may use (:func:`memory_limit`: physical memory, or a container's cgroup limit
    where that is smaller; 4 GiB where neither is reported)."""
    memory = memory_limit()
    return 4 * 2**30 if memory is None else memory // 4


def default_queue_size(batch_bytes: int, budget: int, workers: int) -> int:
    """The largest ``max_queue_size`` (1 to Keras' 10) whose batches in flight,
    ``max_queue_size + workers + 2``, fit in ``budget`` bytes; 1 when none does."""
    fits = budget // batch_bytes - max(workers, 1) - 2
    return int(min(max(fits, 1), KERAS_MAX_QUEUE_SIZE))


def _arithmetic(
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


def onehot_queue_size(
    shape: tuple[int, int, int],
    dtype: np.dtype,
    arrays: int,
    workers: int,
    budget: int,
    queue: int | None = None,
) -> int:
    """The ``max_queue_size`` for batches of ``arrays`` one-hot arrays of ``shape`` and
    ``dtype``: ``queue`` when given, else :func:`default_queue_size` for ``budget``.

    ``shape`` is (batch, positions, vocab) with the positions the targets cover: ``max_len``,
    or a Sequence's ``target_window`` (a window of W costs ``W / max_len`` of the bytes).

    Raises
    ------
    InvalidArgumentError
        The batches in flight do not fit in this machine's physical memory.

    Warns
    -----
    MemoryBudgetWarning
        They exceed ``budget`` (the warning points at the caller's caller: the line that
        built the Sequence).
    """
    if queue is None:
        queue = default_queue_size(math.prod(shape) * dtype.itemsize * arrays, budget, workers)
    size, batches, words = _arithmetic(shape, dtype, arrays, queue, workers)
    memory = memory_limit()
    if memory is not None and size * batches > memory:
        raise InvalidArgumentError(
            f"{words}: more than this machine's {_gib(memory)} of memory (or its container's "
            f"limit). {_FIXES}"
        )
    if size * batches > budget:
        warnings.warn(
            f"{words}, more than memory_budget={budget:,} bytes ({_gib(budget)}; the default is "
            f"a quarter of this machine's memory). {_FIXES}, or pass a larger memory_budget",
            MemoryBudgetWarning,
            stacklevel=3,
        )
    return queue
