"""The data of a training run: which rows of the train split it trains on and holds out
(:class:`_TrainRows`: whole movies when the store groups its reviews), the Sequences that serve
them (training, validation and evaluation, with the model's target window), the unigram counts
the softmax starts from, and the checks of a store the text VAE can train on.

Private to :mod:`textvae.training.trainer`, which is its only user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from textvae.batching import (
    OneHotSequence,
    SamplingOptions,
    ShardOptions,
    holdout_groups,
    holdout_rows,
)
from textvae.config import TrainConfig
from textvae.data import TokenStore
from textvae.data.vocab import OOV_ID, PAD_ID, START_ID
from textvae.errors import StoreMismatchError
from textvae.training.devices import DataParallelPlan

Log = Callable[[str], None]


def _eval_split(store: TokenStore) -> str:
    others = [s for s in store.splits if s != "train"]
    return "test" if "test" in others else (others[-1] if others else "train")


@dataclass(frozen=True)
class _TrainRows:
    """The rows of the train split a run trains on and holds out for validation: drawn once per
    run (:meth:`of`) and handed to everything that needs them.

    Attributes
    ----------
    kept, held_out
        Sorted, disjoint row indices (``held_out`` empty when ``val_fraction`` is 0).
    limit
        ``config.train_rows``: the most rows of ``kept`` an epoch reads (``None``: all).
    how
        How ``held_out`` was drawn, for the log: ``"grouped by movie (173 movies)"`` when the
        store groups the train split (whole groups held out: a movie's reviews are never on
        both sides), else ``"at random"``.
    """

    kept: np.ndarray
    held_out: np.ndarray
    limit: int | None
    how: str = "at random"

    @classmethod
    def of(cls, config: TrainConfig, store: TokenStore, *, grouped: bool = True) -> _TrainRows:
        """The rows of ``store``'s train split for ``config`` (seeded: the same in every
        process and every resume); ``grouped=False`` holds out random rows even when the store
        has groups (a run resumed that started on a store without them)."""
        num_rows = store.num_rows("train")
        if config.val_fraction == 0:
            return cls(np.arange(num_rows), np.arange(0), config.train_rows)
        groups = store.groups("train") if grouped else None
        if groups is None:
            kept, held_out = holdout_rows(num_rows, config.val_fraction, config.seed)
            return cls(kept, held_out, config.train_rows)
        kept, held_out = holdout_groups(groups, config.val_fraction, config.seed)
        count = len(np.unique(groups[held_out]))
        name = store.group_by("train") or "group"
        how = f"grouped by {name} ({count:,} {name}{'' if count == 1 else 's'})"
        return cls(kept, held_out, config.train_rows, how)

    def per_epoch(self, num_shards: int) -> int:
        """Rows trained per epoch by ``num_shards`` processes together: every shard reads the
        same count, a remainder is left out (as :class:`OneHotSequence` counts its shard)."""
        used = len(self.kept) if self.limit is None else min(self.limit, len(self.kept))
        return used // num_shards * num_shards


def _sequence(
    config: TrainConfig,
    store: TokenStore,
    row_subset: np.ndarray,
    limit: int | None = None,
    plan: DataParallelPlan | None = None,
    **kwargs: Any,
) -> OneHotSequence:
    """A sequence over ``row_subset`` of the train split (``limit`` rows of it an epoch), in
    the training targets' form; under a :class:`DataParallelPlan`, this process's share of
    every batch, whole batches only (each device takes an equal share)."""
    if plan is not None:
        kwargs.update(drop_remainder=True)
    return OneHotSequence(
        store,
        "train",
        config.batch_size if plan is None else plan.local_batch(config.batch_size),
        targets=config.targets,
        dtype=config.dtype,
        target_window=config.model.target_window,
        seed=config.seed,
        sampling=SamplingOptions(rows=limit, row_subset=row_subset),
        workers=config.workers,
        max_queue_size=config.max_queue_size,
        **kwargs,
    )


def _train_sequence(
    config: TrainConfig,
    store: TokenStore,
    rows: _TrainRows | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    plan: DataParallelPlan | None = None,
) -> OneHotSequence:
    """Shard ``shard_index`` of ``num_shards`` of the training rows, shuffled per epoch
    (``rows``: the run's :class:`_TrainRows`, drawn here when not given); under ``plan``,
    this process's shard."""
    if rows is None:
        rows = _TrainRows.of(config, store)
    if plan is not None:
        shard_index, num_shards = plan.process_index, plan.process_count
    return _sequence(
        config,
        store,
        rows.kept,
        rows.limit,
        plan,
        shuffle=True,
        shards=ShardOptions(shard_index, num_shards),
    )


def _val_sequence(
    config: TrainConfig, store: TokenStore, rows: _TrainRows, plan: DataParallelPlan | None = None
) -> OneHotSequence | None:
    """The held-out part of the train split (``None`` without one, or too small for one whole
    batch under ``plan``), in the training targets' form: ``val_loss`` is the training loss on
    reviews the model never trained on."""
    if not len(rows.held_out):
        return None
    shards = ShardOptions(*(plan.process_index, plan.process_count) if plan else (0, 1))
    seq = _sequence(config, store, rows.held_out, None, plan, shuffle=False, shards=shards)
    return seq if len(seq) else None


def _eval_sequence(config: TrainConfig, store: TokenStore, split: str) -> OneHotSequence:
    """The evaluation split (``eval_rows`` of it, drawn at random, when given), sparse targets
    and the last partial batch included."""
    return OneHotSequence(
        store,
        split,
        max(config.batch_size, 64),
        targets="sparse",
        shuffle=config.eval_rows is not None,
        seed=config.seed,
        sampling=SamplingOptions(rows=config.eval_rows),
        drop_remainder=False,
    )


def _unigram_counts(store: TokenStore, rows: np.ndarray, window: int | None = None) -> np.ndarray:
    """Occurrences of every id in ``rows`` of the train split, read chunk by chunk; the pad id
    counts the rows with an end position (:mod:`textvae.model.losses`): those with padding, and
    with ``truncating="pre"`` every row. ``window``: only the last that many ids of each row
    (what the decoder reconstructs)."""
    counts = np.zeros(store.vocab_size, dtype=np.int64)
    ends = 0
    chunk = store.chunk_rows("train")
    for start in range(0, len(rows), chunk):
        ids = store.read("train", rows[start : start + chunk])
        ids = ids if window is None else ids[:, ids.shape[1] - window :]
        counts += np.bincount(ids.ravel(), minlength=store.vocab_size)
        ends += (
            len(ids)
            if store.truncating == "pre"
            else int(np.count_nonzero((ids == store.pad_id).any(axis=1)))
        )
    counts[store.pad_id] = ends
    return counts


def _check_vae_store(store: TokenStore, window: int | None = None) -> None:
    """Refuse a store the text VAE cannot train on: it needs textvae's ids (padding 0, start 1,
    out-of-vocabulary 2; its word dropout and decoding use them) and binary labels; a decoder
    ``window`` needs rows at least that long, padded at the start (their last ids: the text)."""
    if window is not None and window > store.max_len:
        raise StoreMismatchError(
            f"target_window {window} is longer than the rows of the store at {store.path} "
            f"(max_len {store.max_len}): give --target-window at most {store.max_len}, or "
            "build a store with longer rows (--max-len)"
        )
    if window is not None and window < store.max_len and store.padding != "pre":
        raise StoreMismatchError(
            f"target_window {window} reconstructs the last {window} ids of each row, but the "
            f"store at {store.path} is padded at the end (padding='post'): those are mostly "
            "padding. Build the store with padding='pre' (the default), or leave "
            "--target-window unset"
        )
    ids = (store.pad_id, store.start_id, store.oov_id)
    if ids != (PAD_ID, START_ID, OOV_ID):
        raise StoreMismatchError(
            f"the store at {store.path} holds another tokenizer's ids (pad, start, "
            f"out-of-vocabulary ids: {ids}); the text VAE needs textvae's ids "
            f"{(PAD_ID, START_ID, OOV_ID)}: build its store from text (textvae-ingest, "
            "build_store_from_texts), and feed a store of your own ids to your own model "
            "through OneHotSequence"
        )
    if store.num_classes != 2:
        kind = "no labels" if store.num_classes is None else f"{store.num_classes} classes"
        raise StoreMismatchError(
            f"the store at {store.path} has {kind}; the text VAE's sentiment head needs binary "
            "labels (0/1; -1 for an unlabelled review): rebuild it with labels in {0, 1}; "
            "to train without labels, build it with num_classes=2 and labels for no split or "
            "some (labels={}: every review -1, the reconstruction alone is trained)"
        )


def _report_labels(store: TokenStore, rows: _TrainRows, log: Log) -> None:
    """Say how many training reviews carry a label: an unlabelled one (-1) weighs 0 in the
    sentiment loss and accuracy (:mod:`textvae.model.labels`); with none labelled the run trains
    the reconstruction only (its ``sentiment_loss`` is 0 and ``sentiment_accuracy`` NaN)."""
    labelled = int(np.count_nonzero(store.labels("train")[rows.kept] >= 0))
    if labelled == len(rows.kept):
        return
    if labelled == 0:
        log(
            f"no training review of {store.path} is labelled (all -1): training the "
            "reconstruction only; the sentiment head stays untrained (sentiment_loss 0, "
            "sentiment_accuracy nan)"
        )
    else:
        log(
            f"{labelled:,} of {len(rows.kept):,} training reviews are labelled: the others "
            "(-1) count in no sentiment loss or accuracy"
        )
