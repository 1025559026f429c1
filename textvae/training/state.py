"""Where a run's training stands (``state.json``): :class:`TrainingState`, and the names of the
model files a state points at (``last.keras``, ``checkpoint-N.keras``).

The run folder and the rules of its files are :mod:`textvae.training.run`'s, which re-exports
these names; this module holds the state alone (no Keras, no file access).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHECKPOINT", "LAST", "TrainingState", "checkpoint_name", "compact"]

#: The model after the last finished epoch, with its optimizer state.
LAST = "last.keras"
#: A mid-epoch checkpoint: the model at training step N.
CHECKPOINT = re.compile(r"checkpoint-(\d+)\.keras")


def checkpoint_name(step: int) -> str:
    """The file name of the mid-epoch checkpoint taken after training step ``step``."""
    return f"checkpoint-{int(step)}.keras"


@dataclass(frozen=True)
class TrainingState:
    """Where a run's training stands: the content of ``state.json``.

    ``state.json`` of textvae 0.2 and earlier holds ``epochs_done`` only: such a state resumes
    from ``last.keras`` at the start of epoch ``epochs_done``, as it did then.

    Parameters
    ----------
    epochs_done
        Epochs finished (history rows and ``last.keras`` exist for them): the 0-based epoch
        training is in.
    batches_done
        Batches of epoch ``epochs_done`` already trained (0 at an epoch's start): ``--resume``
        continues with the next one.
    step
        The optimizer's ``iterations`` at the checkpoint (``None``: not recorded).
    steps_per_epoch
        Batches per epoch of the run that wrote the state (a mid-epoch state resumes only with
        the same).
    checkpoint
        The model file to resume from: ``last.keras`` or ``checkpoint-N.keras``.
    monitor, best
        The log ``best.keras`` is chosen on and its lowest value so far (``None``: none yet).
    seed_states
        The state of every Keras ``SeedGenerator`` of the model (sampling noise, word dropout,
        ...), in the order of ``model.variables``: Keras does not save them in ``.keras``.
    metric_states
        Mid-epoch only: the model's metric variables (running sums of the epoch's logs) by
        path, so the finished epoch's logs cover all its batches.
    """

    epochs_done: int
    batches_done: int = 0
    step: int | None = None
    steps_per_epoch: int | None = None
    checkpoint: str = LAST
    monitor: str | None = None
    best: float | None = None
    seed_states: tuple[tuple[int, ...], ...] = ()
    metric_states: dict[str, list[float]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("epochs_done", "batches_done"):
            _require(_is_count(getattr(self, name)), f"`{name}` is not an integer >= 0")
        for name in ("step", "steps_per_epoch"):
            value = getattr(self, name)
            _require(value is None or _is_count(value), f"`{name}` is not an integer >= 0")
        _require(
            self.checkpoint == LAST or CHECKPOINT.fullmatch(str(self.checkpoint)) is not None,
            f"`checkpoint` is not {LAST} nor checkpoint-N.keras: {self.checkpoint!r}",
        )
        _require(
            self.best is None
            or (isinstance(self.best, (int, float)) and not isinstance(self.best, bool)),
            "`best` is not a number",
        )
        _require(
            all(
                isinstance(s, (list, tuple)) and all(_is_int(v) for v in s)
                for s in self.seed_states
            ),
            "`seed_states` is not a list of integer lists",
        )
        object.__setattr__(self, "seed_states", tuple(tuple(s) for s in self.seed_states))
        _require(
            isinstance(self.metric_states, dict)
            and all(
                isinstance(k, str)
                and isinstance(v, list)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                for k, v in self.metric_states.items()
            ),
            "`metric_states` is not an object of number lists",
        )

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON data."""
        data = dataclasses.asdict(self)
        data["seed_states"] = [list(s) for s in self.seed_states]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> TrainingState:
        """Rebuild a state from :meth:`to_dict`'s data.

        Raises
        ------
        ValueError
            ``data`` is not such a state.
        """
        _require(isinstance(data, dict), "not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        _require("epochs_done" in data, "no `epochs_done`")
        unknown = sorted(set(data) - known)
        _require(not unknown, f"unknown keys {unknown}")
        return cls(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise ValueError(why)


def compact(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the keys that hold their defaults: an epoch-end state of a run
    without random layers reads ``{"epochs_done": k, ...}`` as before."""
    defaults = TrainingState(0).to_dict()
    out = {k: v for k, v in state.items() if k == "epochs_done" or v != defaults[k]}
    if isinstance(out.get("best"), float) and not math.isfinite(out["best"]):
        out.pop("best")
    return out
