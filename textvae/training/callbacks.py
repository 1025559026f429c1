"""The Keras callbacks of a training run, for ``model.fit`` and the multi-worker loop alike.

``textvae-train`` hands the same callbacks to ``model.fit`` (one process) and to
:func:`textvae.training.distributed.fit_distributed` (several), which drives them through a
``keras.callbacks.CallbackList`` with the same hooks and logs as ``fit``:

- :class:`EpochSync` ties fit's epoch k to the Sequence's epoch k (every process);
- :class:`KLAnnealing` raises the model's KL weight step by step (every process);
- :class:`RunCheckpoint` writes the run folder's files every epoch, and mid-epoch checkpoints
  every N steps or M minutes and on SIGTERM/SIGINT (the chief only; mid-epoch in one process).

:func:`seed_state_variables` finds the random streams' state that ``.keras`` files leave out.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any

import keras
import numpy as np

from textvae._checks import int_at_least, non_negative
from textvae.errors import TrainingInterrupted
from textvae.training.preemption import StopOnSignal
from textvae.training.run import BEST, RunDir, TrainingState

__all__ = [
    "SELECTION",
    "SENTIMENT_PER_LOG_LOSS",
    "EpochSync",
    "KLAnnealing",
    "RunCheckpoint",
    "restore_seed_states",
    "seed_state_variables",
    "selection_score",
]

#: The log that chooses ``best.keras`` in a run with validation rows: :func:`selection_score`.
SELECTION = "val_selection"
#: What a unit of validation sentiment accuracy is worth in :func:`selection_score`, against
#: the natural log of ``val_loss``: 1.0 makes one point of accuracy (0.01) worth 1% of the loss.
SENTIMENT_PER_LOG_LOSS = 1.0


def selection_score(logs: dict[str, Any]) -> float | None:
    """``ln(val_loss) - val_sentiment_accuracy``: the lower, the better; the value of
    :data:`SELECTION`, by which ``textvae-train`` chooses ``best.keras``.

    The validation loss alone is mostly reconstruction (the 20,000-way softmax over every
    position), so it keeps falling while the sentiment head overfits; accuracy alone ignores
    what the VAE is for. The log makes the loss term relative, whatever the loss's scale (the
    review length, the loss weights): an epoch is preferred when its loss is lower by more than
    1% per point of validation accuracy it loses (:data:`SENTIMENT_PER_LOG_LOSS`), and
    preferred over a lower loss when it gains more than a point of accuracy per 1% of loss.

    None without ``val_loss`` (no validation); NaN for a loss that is NaN or not positive (it
    never counts as better); the loss term alone when the accuracy is missing or NaN (no
    labelled validation review).
    """
    loss = logs.get("val_loss")
    if loss is None:
        return None
    loss = float(loss)
    if not loss > 0:
        return math.nan
    score = math.log(loss)
    accuracy = logs.get("val_sentiment_accuracy")
    if accuracy is not None and math.isfinite(float(accuracy)):
        score -= SENTIMENT_PER_LOG_LOSS * float(accuracy)
    return score


def seed_state_variables(model: keras.Model) -> list[keras.Variable]:
    """The state variables of every ``keras.random.SeedGenerator`` of ``model``, in the order
    of ``model.variables``.

    Keras saves a layer's weights in ``.keras`` files, not its seed generators' state (Keras
    3.15: ``Layer.save_own_variables`` stores ``weights`` only), so a reloaded model would draw
    its sampling noise and word dropout from the start again. Keras defines ``variables`` as
    ``weights`` plus those states (metric variables are in neither): the difference is exactly
    them.
    """
    weights = {id(w) for w in model.weights}
    seen: set[int] = set()
    states = []
    for v in model.variables:
        if id(v) not in weights and id(v) not in seen:
            seen.add(id(v))
            states.append(v)
    return states


def restore_seed_states(model: keras.Model, states: Any) -> None:
    """Set ``model``'s seed generators to ``states`` (from :func:`seed_state_variables`).

    Raises
    ------
    ValueError
        ``states`` does not fit ``model``'s seed generators (another model).
    """
    variables = seed_state_variables(model)
    states = [np.asarray(s) for s in states]
    if len(states) != len(variables) or any(
        s.size != int(np.prod(v.shape)) for s, v in zip(states, variables, strict=False)
    ):
        raise ValueError(
            f"`states` hold {len(states)} seed states, the model has {len(variables)} "
            "seed generators: they belong to another model"
        )
    for v, s in zip(variables, states, strict=True):
        v.assign(s.astype(v.dtype).reshape(v.shape))


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

    A :class:`~textvae.batching.sequence.OneHotSequence` follows ``fit``'s epochs on its own from
    the epoch it is at (0 for a new one: ``model.fit(seq, epochs=3)`` serves epochs 0, 1, 2); this
    callback pins it to fit's epoch number at every epoch's start whatever happened before,
    so a run resumed at ``initial_epoch=k`` reads the same batches as an uninterrupted one, and
    every training process (the multi-worker loop too) the same epoch's order.

    Parameters
    ----------
    sequence
        Anything with ``set_epoch(epoch)``, e.g. :class:`~textvae.batching.sequence.OneHotSequence`.
    """

    def __init__(self, sequence: Any) -> None:
        super().__init__()
        self.sequence = sequence

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sequence.set_epoch(epoch)


class RunCheckpoint(keras.callbacks.Callback):
    """Write the run folder's files: every epoch, and mid-epoch on a schedule or a signal.

    At every epoch's end, in this order: ``best.keras`` (when ``logs[monitor]`` is the lowest
    of the run so far), a row of ``history.csv``, then the checkpoint
    (:meth:`~textvae.training.run.RunDir.save_checkpoint`: the model, with its optimizer, as
    ``last.keras``; ``state.json``, the commit mark, names it).

    Mid-epoch, after a training step, every ``every_steps`` steps or ``every_seconds`` seconds
    (whichever comes first), it saves a checkpoint of the whole training state: the model
    with its optimizer state (so the step count and the KL schedule), the epoch and the
    number of batches trained (counted at ``on_train_batch_end``: batches trained, not
    prefetched), the seed generators' states (:func:`seed_state_variables`) and the metrics'
    running sums, so the epoch's ``history.csv`` row covers all its batches. No mid-epoch save
    follows an epoch's last step: the epoch's end saves. When ``stop`` has received a signal,
    the next step's end saves (or the epoch's end, if the signal came during validation) and
    raises :class:`~textvae.errors.TrainingInterrupted`.

    In a multi-worker run give it to the chief only, without ``every_*`` or ``stop``.

    Parameters
    ----------
    out
        The run folder (``--out``), a path or a :class:`~textvae.training.run.RunDir`.
    monitor
        The log whose lowest value selects ``best.keras``; :data:`SELECTION` is computed from
        the epoch's logs (:func:`selection_score`) and written to ``history.csv`` with them.
    append
        Continue ``history.csv`` (a resumed run); otherwise it is started afresh at
        ``on_train_begin``.
    every_steps, every_seconds
        Mid-epoch checkpoint intervals (``None``: not on that count).
    resume
        The :class:`~textvae.training.run.TrainingState` training resumes from: its best value is
        kept, and a mid-epoch state makes the first epoch count its batches from
        ``resume.batches_done`` and add the saved metric sums after its first step. Train that
        epoch on ``sequence.from_batch(resume.batches_done)``.
    stop
        A :class:`~textvae.training.preemption.StopOnSignal` to watch.
    """

    def __init__(
        self,
        out: str | os.PathLike[str] | RunDir,
        *,
        monitor: str = "loss",
        append: bool = False,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        resume: TrainingState | None = None,
        stop: StopOnSignal | None = None,
    ) -> None:
        super().__init__()
        self.out = out if isinstance(out, RunDir) else RunDir(out)
        self.monitor = monitor
        self.append = bool(append)
        self.every_steps = int_at_least("every_steps", every_steps, 1, allow_none=True)
        self.every_seconds = (
            None if every_seconds is None else non_negative("every_seconds", every_seconds)
        )
        self.stop = stop
        self.best = math.inf
        if resume is not None and resume.monitor == monitor and resume.best is not None:
            self.best = float(resume.best)
        self._resume = resume if resume is not None and resume.batches_done else None
        self.last_state: TrainingState | None = None
        self._epoch = 0
        self._first_batch = 0
        self._batches_done = 0
        self._pending_metrics: dict[str, list[float]] | None = None
        self._saved_step = 0
        self._saved_at = time.monotonic()

    # -- hooks --------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.append:
            self.out.clear_history()
        self._saved_step = self._step()
        self._saved_at = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._first_batch = 0
        if self._resume is not None and epoch == self._resume.epochs_done:
            self._first_batch = self._resume.batches_done
            self._pending_metrics = self._resume.metric_states
            self._resume = None
        self._batches_done = self._first_batch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches_done = self._first_batch + batch + 1
        if self._pending_metrics is not None:
            self._add_metric_states(self._pending_metrics)
            self._pending_metrics = None
        steps = self.params.get("steps") if self.params else None
        if steps is not None and batch + 1 >= steps:
            return  # the epoch's end follows and saves
        stopping = self.stop is not None and self.stop.requested
        if stopping or self._due():
            self._save(self._state(self._epoch, self._batches_done))
        if stopping:
            raise self._interrupted()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self.monitor == SELECTION and SELECTION not in logs:
            score = selection_score(logs)
            if score is not None:
                logs[SELECTION] = score
        value = logs.get(self.monitor)
        if value is not None and value < self.best:  # NaN never counts as better
            self.best = float(value)
            self.out.save_model(self.model, BEST)
        self.out.append_history(epoch, logs)
        self._save(self._state(epoch + 1, 0))
        if self.stop is not None and self.stop.requested:
            raise self._interrupted()

    # -- the state ----------------------------------------------------------------------------
    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None else 0

    def _due(self) -> bool:
        if self.every_steps is not None and self._step() - self._saved_step >= self.every_steps:
            return True
        elapsed = time.monotonic() - self._saved_at
        return self.every_seconds is not None and elapsed >= self.every_seconds

    def _state(self, epochs_done: int, batches_done: int) -> TrainingState:
        steps = self.params.get("steps") if self.params else None
        return TrainingState(
            epochs_done=epochs_done,
            batches_done=batches_done,
            step=self._step(),
            steps_per_epoch=None if steps is None else self._first_batch + int(steps),
            monitor=self.monitor,
            best=self.best if math.isfinite(self.best) else None,
            seed_states=[np.ravel(v.numpy()).tolist() for v in seed_state_variables(self.model)],
            metric_states=self._metric_states() if batches_done else {},
        )

    def _save(self, state: TrainingState) -> None:
        self.last_state = self.out.save_checkpoint(self.model, state)
        self._saved_step = state.step or 0
        self._saved_at = time.monotonic()

    def _metric_variables(self) -> list[keras.Variable]:
        return [v for m in self.model.metrics for v in m.variables]

    def _metric_states(self) -> dict[str, list[float]]:
        return {v.path: np.ravel(v.numpy()).tolist() for v in self._metric_variables()}

    def _add_metric_states(self, saved: dict[str, list[float]]) -> None:
        # Metric states are running sums (a Mean's total and count): the first step after
        # resuming started from zero, so adding the saved sums gives the uninterrupted ones.
        variables = {v.path: v for v in self._metric_variables()}
        missing = sorted(set(saved) - set(variables))
        if missing:
            warnings.warn(
                f"the checkpoint's metrics {missing} are not this model's: the resumed epoch's "
                "logs leave out the batches trained before the checkpoint",
                RuntimeWarning,
                stacklevel=2,
            )
        for path, values in saved.items():
            if path in variables:
                v = variables[path]
                v.assign(v.numpy() + np.asarray(values, dtype=v.dtype).reshape(v.shape))

    def _interrupted(self) -> TrainingInterrupted:
        state = self.last_state
        steps = state.steps_per_epoch
        where = (
            f"epoch {state.epochs_done + 1}, batch {state.batches_done}"
            + (f" of {steps}" if steps else "")
            if state.batches_done
            else f"the end of epoch {state.epochs_done}"
        )
        return TrainingInterrupted(
            f"{self.stop.name}: saved the training state at {where} (step {state.step}) in "
            f"{self.out.path}; run the same command with --resume to continue from there",
            self.stop.signum,
            state.step or 0,
        )
