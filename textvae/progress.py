"""Progress reports: one callback type, ``progress(stage, count)``, and its console printer.

Long steps (counting words, encoding a split into a store) call ``progress(stage, count)`` as
they advance: ``stage`` names the step (:data:`VOCAB_STAGE` while the vocabulary is counted,
then each split's name while its rows are written) and ``count`` is how many reviews that step
has done so far. The same stage is reported with growing counts and once more at its end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["VOCAB_STAGE", "ConsoleProgress", "ProgressFn", "VocabRows"]

#: ``progress(stage, count)``: ``count`` reviews of ``stage`` done so far.
ProgressFn = Callable[[str, int], None]

#: The stage reported while the training split's words are counted.
VOCAB_STAGE = "vocab"


class VocabRows:
    """A :data:`ProgressFn` that passes every report on to ``progress`` (if any) and keeps in
    ``rows`` the largest count of :data:`VOCAB_STAGE`: the training reviews the vocabulary pass
    read (0 when it reported none), which a build uses to choose its shards."""

    def __init__(self, progress: ProgressFn | None = None) -> None:
        self.progress = progress
        self.rows = 0

    def __call__(self, stage: str, count: int) -> None:
        if stage == VOCAB_STAGE:
            self.rows = max(self.rows, count)
        if self.progress is not None:
            self.progress(stage, count)


class ConsoleProgress:
    """A :data:`ProgressFn` that prints to a stream (default stderr).

    On a terminal one line is rewritten in place, at most every ``min_interval`` seconds;
    elsewhere (a log file, a pipe) one line per stage is written when the stage ends. Call
    :meth:`close` after the last stage to finish its line.

    Parameters
    ----------
    stream
        Where to write; default ``sys.stderr``.
    min_interval
        Seconds between rewrites of the terminal line.
    """

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._stage: str | None = None
        self._last = 0.0
        self._count = 0
        self._start = time.perf_counter()

    def __call__(self, stage: str, count: int) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            self.close()
            self._stage, self._start = stage, now
        self._count = count
        if self.tty and now - self._last >= self.min_interval:
            self._last = now
            self.stream.write(f"\r{self._line(now)}")
            self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = self._count / elapsed if elapsed > 0 else 0.0
        return f"{self._stage}: {self._count:,} reviews ({elapsed:.1f} s, {rate:,.0f}/s)"

    def close(self) -> None:
        """Finish the current stage's line (nothing if no stage is open)."""
        if self._stage is not None:
            self.stream.write(("\r" if self.tty else "") + self._line(time.perf_counter()) + "\n")
            self.stream.flush()
            self._stage = None
