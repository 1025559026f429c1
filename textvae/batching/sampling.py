"""The epoch plan: which rows each batch of each epoch holds.

Kept apart from the Sequence that reads and expands them (as xbatcher keeps its ``BatchSchema``
apart from its generator): an :class:`EpochPlan` needs only the split's row and chunk counts,
so ``len(seq)``, a shard's rows or a hold-out can be computed without opening a store or
building a Sequence. Everything random is keyed on ``(seed, epoch)``: every worker, process and
resume agrees on the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from textvae._checks import fraction, int_at_least, int_in_range, positive_int
from textvae.errors import InvalidArgumentError

__all__ = [
    "EpochPlan",
    "SamplingOptions",
    "ShardOptions",
    "chunk_windows",
    "holdout_groups",
    "holdout_rows",
]


@dataclass(frozen=True)
class ShardOptions:
    """This process's share of every epoch (validated at construction).

    Parameters
    ----------
    shard_index
        Which share this process serves, in ``[0, num_shards)``.
    num_shards
        How many disjoint, equally long shares each epoch is cut into (one per training
        process). ``N % num_shards`` rows are left out of each epoch (different ones each epoch
        when shuffled).
    """

    shard_index: int = 0
    num_shards: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_shards", positive_int("num_shards", self.num_shards))
        index = int_in_range("shard_index", self.shard_index, 0, self.num_shards)
        object.__setattr__(self, "shard_index", index)


@dataclass(frozen=True, eq=False)
class SamplingOptions:
    """Which rows of a split an epoch serves, and how locally it shuffles them.

    Whether to shuffle, and the seed, stay plain keywords of the Sequence (``shuffle=``,
    ``seed=``), where a Keras user looks for them (``fit(shuffle=...)``,
    ``Dataset.shuffle(seed=...)``); these options tune what is less often changed.

    Parameters
    ----------
    rows
        Use only the first ``rows`` rows of each epoch's order (a fresh random subset each
        epoch when shuffled; the first rows of the split otherwise), before sharding; ``None``
        uses every row. ``textvae-train`` passes ``--train-rows`` / ``--eval-rows`` here.
    row_subset
        Serve only these rows of the split (indices, e.g. one side of :func:`holdout_rows`);
        shuffling, ``rows`` and sharding then apply to them alone. ``None``: every row.
    window_chunks
        A shuffled epoch permutes the chunks, then the rows within windows of at most this many
        chunks (balanced sizes: see :func:`chunk_windows`), so a batch decompresses at most
        that many chunks (cached while the window lasts).
    """

    rows: int | None = None
    row_subset: np.ndarray | Sequence[int] | None = None
    window_chunks: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", positive_int("rows", self.rows, allow_none=True))
        object.__setattr__(self, "window_chunks", positive_int("window_chunks", self.window_chunks))
        if self.row_subset is not None:
            index = np.asarray(self.row_subset)
            if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
                raise InvalidArgumentError(
                    "`row_subset` must be a 1-D array of row indices. "
                    f"Received: dtype={index.dtype}, shape={index.shape}"
                )
            index = index.astype(np.int64)
            index.flags.writeable = False
            object.__setattr__(self, "row_subset", index)

    def __repr__(self) -> str:
        subset = "None" if self.row_subset is None else f"<{len(self.row_subset)} rows>"
        return (
            f"SamplingOptions(rows={self.rows!r}, row_subset={subset}, "
            f"window_chunks={self.window_chunks})"
        )


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


def holdout_groups(
    groups: np.ndarray, share: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split the rows of ``groups`` (the group number of every row, e.g.
    :meth:`TokenStore.groups <textvae.data.store.TokenStore.groups>`) into ``(kept, held_out)``
    sorted row indices, holding out whole groups: no group has rows on both sides.

    The groups are put in a seeded random order and taken until the held-out rows come
    closest to ``round(share * rows)`` (at least one group when ``share > 0``, never all): the
    same for given ``(groups, share, seed)`` in every process and every resume. With IMDB's
    movies (at most 30 reviews each) 5% of the train split is 1,250 rows, give or take a few.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"`groups` must be a 1-D array of integer group numbers. Received: {groups.dtype} "
            f"array of shape {groups.shape}"
        )
    num_rows = positive_int("num_rows", len(groups))
    share = fraction("share", share)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if share == 0:
        return np.arange(num_rows), np.arange(0)
    if len(names) < 2:
        raise InvalidArgumentError(
            f"holding out whole groups needs at least 2 groups; the {num_rows} rows have "
            f"{len(names)} (in textvae-train: --val-fraction 0, or a corpus with more groups)"
        )
    target = max(round(share * num_rows), 1)
    rng = np.random.default_rng([seed, 0x5E1D, 0x6E0])  # its own stream, apart from rows'
    order = rng.permutation(len(names))
    totals = np.cumsum(counts[order])
    # the prefix of groups whose rows come closest to the target (the shorter on a tie)
    past = int(np.searchsorted(totals, target))  # first prefix reaching the target
    take = past + 1
    if past > 0 and (past >= len(totals) or target - totals[past - 1] <= totals[past] - target):
        take = past
    if take >= len(names):
        raise InvalidArgumentError(
            f"holding out `share`={share} of {num_rows} rows in whole groups leaves none to keep "
            "(in textvae-train: --val-fraction): use a smaller fraction"
        )
    held_group = np.zeros(len(names), dtype=bool)
    held_group[order[:take]] = True
    held = held_group[inverse]
    return np.flatnonzero(~held), np.flatnonzero(held)


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


class EpochPlan:
    """The rows of every batch of every epoch of one shard of a split (validated at
    construction; picklable, it holds no store).

    Parameters
    ----------
    num_rows, chunk_rows
        The split's rows and rows per stored chunk.
    batch_size
        Rows per batch; the last partial batch counts unless ``drop_remainder``.
    shuffle, seed
        Shuffle each epoch, keyed on ``(seed, epoch)``; ``seed`` must be an integer then.
    sampling, shards
        See :class:`SamplingOptions` and :class:`ShardOptions` (defaults: every row, one shard).
    split
        The split's name, for messages.
    """

    def __init__(
        self,
        num_rows: int,
        chunk_rows: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
        drop_remainder: bool = False,
        sampling: SamplingOptions | None = None,
        shards: ShardOptions | None = None,
        split: str = "train",
    ) -> None:
        positive_int("batch_size", batch_size)
        if shuffle and seed is None:
            raise InvalidArgumentError(
                "`seed` must be an integer when shuffle=True, so that every worker and every "
                "resume sees the same order. Received: seed=None"
            )
        int_at_least("seed", seed, 0, allow_none=True)
        self.num_rows, self.chunk_rows, self.batch_size = num_rows, chunk_rows, batch_size
        self.shuffle, self.seed, self.drop_remainder = shuffle, seed, drop_remainder
        self.sampling = SamplingOptions() if sampling is None else sampling
        self.shards = ShardOptions() if shards is None else shards
        subset = self.sampling.row_subset
        self._member: np.ndarray | None = None
        available = num_rows
        if subset is not None:
            if subset.size and (subset.min() < 0 or subset.max() >= num_rows):
                raise IndexError(
                    f"`row_subset` holds rows outside split {split!r}: valid rows are "
                    f"[0, {num_rows})"
                )
            self._member = np.zeros(num_rows, dtype=bool)
            self._member[subset] = True
            available = int(np.count_nonzero(self._member))
        rows = self.sampling.rows
        used = available if rows is None else min(rows, available)
        self.rows_per_shard = used // self.shards.num_shards
        if self.rows_per_shard == 0:
            raise InvalidArgumentError(
                f"split {split!r} has {num_rows} rows, fewer than "
                f"num_shards={self.shards.num_shards}"
            )

    @property
    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch of this shard."""
        full, rest = divmod(self.rows_per_shard, self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """Row indices this shard serves in ``epoch``, in order."""
        n, c = self.num_rows, self.chunk_rows
        index_dtype = np.int32 if n < 2**31 else np.int64
        if not self.shuffle:
            order = np.arange(n, dtype=index_dtype)
        else:
            rng = np.random.default_rng([self.seed, epoch])
            parts = []
            for window in chunk_windows(-(-n // c), self.sampling.window_chunks, rng):
                rows = np.concatenate(
                    [np.arange(k * c, min((k + 1) * c, n), dtype=index_dtype) for k in window]
                )
                parts.append(rng.permutation(rows))
            order = np.concatenate(parts)
        if self._member is not None:
            order = order[self._member[order]]
        start = self.shards.shard_index * self.rows_per_shard
        return order[start : start + self.rows_per_shard]
