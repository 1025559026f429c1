"""Turn SIGTERM and SIGINT into a request to stop training at the next safe point.

A preempted cloud machine gets SIGTERM and some seconds before it is killed; Ctrl-C sends
SIGINT. Without a handler either ends the process in the middle of a step and loses what was
trained since the last checkpoint. :class:`StopOnSignal` records the signal instead;
:class:`textvae.training.callbacks.RunCheckpoint` reads it after the step in progress, saves the
training state and raises :class:`textvae.errors.TrainingInterrupted`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopOnSignal"]


class StopOnSignal:
    """A context manager: while active, SIGTERM and SIGINT set :attr:`signum` instead of
    ending the process.

    The first signal also puts the previous handlers back, so a second one acts as it would
    without this class (SIGINT raises ``KeyboardInterrupt``, SIGTERM ends the process): a
    stuck save can still be stopped. Signal handlers can only be set from the main thread;
    elsewhere the context does nothing.

    Parameters
    ----------
    signals
        The signals to catch.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked training to stop."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The received signal's name (``"SIGTERM"``), or ``""``."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __enter__(self) -> StopOnSignal:
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            # None: a handler set outside Python; the default is the closest we can restore.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
