"""The Keras callbacks of a training run, for ``model.fit`` and the multi-worker loop alike.

``textvae-train`` hands the same callbacks to ``model.fit`` (one process) and to
:func:`textvae.distributed.fit_distributed` (several), which drives them through a
``keras.callbacks.CallbackList`` with the same hooks and logs as ``fit``:

- :class:`EpochSync` ties fit's epoch k to the Sequence's epoch k (every process);
- :class:`KLAnnealing` raises the model's KL weight step by step (every process);
- :class:`RunCheckpoint` writes the run folder's per-epoch files (the chief only).
"""

from __future__ import annotations

import math
import os
from typing import Any

import keras

from textvae._checks import int_at_least, non_negative
from textvae.run import BEST, LAST, RunDir

__all__ = ["EpochSync", "KLAnnealing", "RunCheckpoint"]


class KLAnnealing(keras.callbacks.Callback):
    """Raise the model's ``kl_weight`` linearly from ``start`` to ``end`` over ``warmup_steps``.

    The weight for a batch is read off the optimizer's ``iterations`` (the number of steps
    already taken), not a counter of the callback's own, so a resumed run continues the
    schedule where it stopped. After ``warmup_steps`` the weight stays at ``end``.

    Parameters
    ----------
    warmup_steps
        Training steps (batches) from ``start`` to ``end``; 0 sets ``end`` at once.
    start, end
        The weights at step 0 and at ``warmup_steps``.
    """

    def __init__(self, warmup_steps: int, start: float = 0.0, end: float = 1.0) -> None:
        super().__init__()
        self.warmup_steps = int_at_least("warmup_steps", warmup_steps, 0)
        self.start = non_negative("start", start)
        self.end = non_negative("end", end)

    def value(self, step: int) -> float:
        """The KL weight for training step ``step`` (0-based)."""
        if self.warmup_steps == 0 or step >= self.warmup_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.warmup_steps

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        self.model.kl_weight.assign(self.value(step))


class EpochSync(keras.callbacks.Callback):
    """Serve the sequence's epoch k during fit's epoch k (``sequence.set_epoch(k)``).

    ``model.fit`` also calls the sequence's ``on_epoch_end`` once after peeking at batches
    before training, so the sequence's own epoch counter runs one ahead of fit's. Pinning it at
    every epoch's start makes a run resumed at ``initial_epoch=k`` read the same batches as an
    uninterrupted one, and every training process the same epoch's order.

    Parameters
    ----------
    sequence
        Anything with ``set_epoch(epoch)``, e.g. :class:`~textvae.sequence.OneHotSequence`.
    """

    def __init__(self, sequence: Any) -> None:
        super().__init__()
        self.sequence = sequence

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sequence.set_epoch(epoch)


class RunCheckpoint(keras.callbacks.Callback):
    """Write the run folder's per-epoch files at every epoch's end.

    In this order: ``best.keras`` (when ``logs[monitor]`` is the lowest of this training
    session), ``last.keras``, a row of ``history.csv``, then ``state.json`` (the epoch's commit
    mark, see :mod:`textvae.run`). Models are saved atomically. In a multi-worker run give it
    to the chief only.

    Parameters
    ----------
    out
        The run folder (``--out``), a path or a :class:`~textvae.run.RunDir`.
    monitor
        The log whose lowest value selects ``best.keras``.
    append
        Continue ``history.csv`` (a resumed run); otherwise it is started afresh at
        ``on_train_begin``.
    """

    def __init__(
        self, out: str | os.PathLike[str] | RunDir, *, monitor: str = "loss", append: bool = False
    ) -> None:
        super().__init__()
        self.out = out if isinstance(out, RunDir) else RunDir(out)
        self.monitor = monitor
        self.append = bool(append)
        self.best = math.inf

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.append:
            self.out.clear_history()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        value = logs.get(self.monitor)
        if value is not None and value < self.best:  # NaN never counts as better
            self.best = float(value)
            self.out.save_model(self.model, BEST)
        self.out.save_model(self.model, LAST)
        self.out.append_history(epoch, logs)
        self.out.write_state(epoch + 1)
