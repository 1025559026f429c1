"""Progress of training and evaluation on the console: Keras' bar on a terminal, plain lines
elsewhere.

Keras 3.15's ``Progbar`` redraws its line with ``\\b``, ``\\r`` and colour codes (``\\x1b[1m``)
whenever ``"posix" in sys.modules``, that is on every Linux and macOS, terminal or not: written
to a log file, one quick run's bar was megabytes of rewrites that no log viewer shows as lines.
So the bar is used only where it is redrawn in place, ``--verbose 1`` with stdout a terminal;
anywhere else :class:`ProgressLines` (``fit``) and :class:`LineBar` (evaluation loops) print a
plain line at each epoch's end and, at ``--verbose 1``, one every ``--log-seconds`` within it.

=========  ========================================  ==========================================
verbose    stdout a terminal                         stdout a file or a pipe
=========  ========================================  ==========================================
0          nothing                                   nothing
1          Keras' progress bar                       a line every ``log_seconds`` and at the end
2          a line at the end of each epoch / pass    a line at the end of each epoch / pass
=========  ========================================  ==========================================
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import keras

from textvae.config import LOG_SECONDS

__all__ = [
    "LineBar",
    "ProgressLines",
    "fit_callbacks",
    "format_logs",
    "keras_bar",
    "progress_bar",
]

Log = Callable[[str], None]


def _is_terminal(stream: TextIO | None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def keras_bar(verbose: int, stream: TextIO | None = None) -> bool:
    """Whether Keras' own progress bar is shown: ``verbose`` 1 with ``stream`` (default stdout)
    a terminal, the one place its redrawing reads as one line."""
    return verbose == 1 and _is_terminal(stream)


def _seconds_between(verbose: int, log_seconds: float) -> float:
    """Seconds between lines within an epoch; 0: the end-of-epoch line only."""
    return log_seconds if verbose == 1 else 0.0


def format_logs(logs: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """``loss 5.123, kl 10.2``: Keras logs as a plain, short text (4 significant digits)."""
    items = logs.items() if isinstance(logs, Mapping) else (logs or ())
    parts = []
    for key, value in items:
        try:
            parts.append(f"{key} {float(value):.4g}")
        except (TypeError, ValueError):
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "ch", "sh", "x")) else "s")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


class ProgressLines(keras.callbacks.Callback):
    """A ``fit`` callback that prints plain progress lines, for ``fit(verbose=0)``.

    One line at each epoch's end (steps, seconds, seconds per step, the epoch's logs, the
    validation ones included) and, when ``every_seconds`` > 0, one every that many seconds
    within the epoch (step, share done, seconds so far, an estimate of the rest, the logs).

    Parameters
    ----------
    every_seconds
        Seconds between two lines within an epoch; 0: the end-of-epoch line only.
    log
        Receives each line (default ``print``).
    """

    def __init__(self, every_seconds: float = LOG_SECONDS, log: Log = print) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.log = log
        self._epoch = 0
        self._started = self._last = time.perf_counter()

    def _where(self) -> str:
        epochs = self.params.get("epochs") if self.params else None
        return f"epoch {self._epoch + 1}" + (f"/{epochs}" if epochs else "")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._started = self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        steps = self.params.get("steps") if self.params else None
        done = batch + 1
        if not self.every_seconds or now - self._last < self.every_seconds or done == steps:
            return  # (the last step's line is the epoch's)
        self._last = now
        elapsed = now - self._started
        at = f"step {done:,}, {_duration(elapsed)}"
        if steps:
            left = _duration(elapsed / done * (steps - done))
            at = f"step {done:,}/{steps:,} ({100 * done / steps:.0f}%), {_duration(elapsed)}"
            at += f", ~{left} left"
        self.log(f"{self._where()}: {at}; {format_logs(logs)}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        steps = self.params.get("steps") if self.params else None
        pace = f" ({elapsed / steps:.2f} s/step)" if steps else ""
        counted = f"{steps:,} steps in " if steps else ""
        self.log(f"{self._where()}: {counted}{_duration(elapsed)}{pace}; {format_logs(logs)}")


def fit_callbacks(
    verbose: int, log_seconds: float = LOG_SECONDS, log: Log = print
) -> tuple[int, list[keras.callbacks.Callback]]:
    """``(verbose, callbacks)`` to hand ``model.fit`` for a command's ``--verbose``: Keras' bar
    on a terminal at 1, else ``verbose=0`` and a :class:`ProgressLines` (none at 0)."""
    if verbose == 0:
        return 0, []
    if keras_bar(verbose):
        return 1, []
    return 0, [ProgressLines(_seconds_between(verbose, log_seconds), log)]


class LineBar:
    """``keras.utils.Progbar``'s ``update`` / ``add``, printing plain lines: one every
    ``every_seconds`` (0: none) and one at the end (``current >= target`` or ``finalize``).

    Parameters
    ----------
    target
        The count at the end (batches, reviews).
    label
        What is counted, first on each line (``"evaluating"``).
    unit_name
        The unit of ``target``, singular (``"review"``, ``"batch"``).
    every_seconds, log
        As for :class:`ProgressLines`.
    end_line
        Whether the end is a line too (``False`` where the caller prints its own).
    """

    def __init__(
        self,
        target: int,
        *,
        label: str,
        unit_name: str = "step",
        every_seconds: float = LOG_SECONDS,
        log: Log = print,
        end_line: bool = True,
    ) -> None:
        self.target = target
        self.end_line = end_line
        self.label = label
        self.unit_name = unit_name
        self.every_seconds = every_seconds
        self.log = log
        self._seen = 0
        self._started = self._last = time.perf_counter()
        self._done = False

    def update(self, current: int, values: Any = None, finalize: bool | None = None) -> None:
        """Record that ``current`` units are done (``values``: ``(name, value)`` pairs)."""
        self._seen = current
        finalize = current >= self.target if finalize is None else finalize
        now = time.perf_counter()
        if self._done or not (
            (finalize and self.end_line)
            or (self.every_seconds and now - self._last >= self.every_seconds)
        ):
            return
        self._done = finalize
        self._last = now
        share = f" ({100 * current / self.target:.0f}%)" if self.target and not finalize else ""
        shown = format_logs(values)
        self.log(
            f"{self.label}: {current:,}/{self.target:,} {_plural(self.unit_name)}{share}, "
            f"{_duration(now - self._started)}" + (f"; {shown}" if shown else "")
        )

    def add(self, n: int, values: Any = None) -> None:
        """``update(current + n)``."""
        self.update(self._seen + n, values)


def progress_bar(
    target: int,
    *,
    label: str,
    unit_name: str = "step",
    verbose: int = 1,
    log_seconds: float = LOG_SECONDS,
    log: Log = print,
    end_line: bool = True,
) -> keras.utils.Progbar | LineBar | None:
    """The progress display of a loop of ``target`` units at ``verbose``: ``None`` at 0, Keras'
    ``Progbar`` at 1 on a terminal, else a :class:`LineBar` (arguments as there)."""
    if verbose == 0:
        return None
    if keras_bar(verbose):
        return keras.utils.Progbar(target, unit_name=unit_name)
    every = _seconds_between(verbose, log_seconds)
    return LineBar(
        target, label=label, unit_name=unit_name, every_seconds=every, log=log, end_line=end_line
    )
