"""Timing helpers shared by the training benchmarks and the GPU check."""

from __future__ import annotations

import time
from typing import Any


def step_timer() -> Any:
    """A Keras callback recording the wall time of every training batch (begin -> end) in
    ``.times``. Keras' train function pulls the next batch inside the step, so a time holds
    compute plus any wait for data."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self._start = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()
