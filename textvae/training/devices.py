"""Training on several devices with Keras' distribution API: ``textvae-train --devices N|all``.

On the JAX backend, ``devices`` > 1 (or ``"all"``) sets a ``keras.distribution.DataParallel``
distribution before the model is built: every variable is replicated on each device, and each
step's batch (``batch_size`` reviews, as on one device) is split evenly among the devices, so
the losses are those of one device with the same batch, within float tolerance (tested). The
Sequence serves the whole batch, so ``batch_size`` must divide by the number of devices; an
epoch's last partial batch is left out (the devices take equal shares).

Several processes (hosts): Keras' own variables ``KERAS_DISTRIBUTION_JOB_ADDRESSES``
(the coordinator's ``host:port`` first), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
``KERAS_DISTRIBUTION_PROCESS_ID`` start ``jax.distributed`` (:func:`keras.distribution.initialize`);
the mesh is then every device of every process (``--devices all``, or their number), each
process serves its own shard of every batch (``batch_size / processes`` rows of its shard of
the epoch), and process 0 writes the run folder. On CPUs the processes need JAX's gloo
collectives (``JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo``).

TensorFlow's multi-worker training stays :mod:`textvae.training.distributed` (``TF_CONFIG``).
Keras and JAX are imported only when a distribution is asked for; :func:`check_devices` (the
config's check) imports neither.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from textvae.errors import InvalidArgumentError

__all__ = ["ALL", "DataParallelPlan", "check_devices", "data_parallel", "undistributed"]

#: ``devices="all"``: every device JAX sees (in every process).
ALL = "all"
#: Keras' variable naming the processes of a multi-process run (read by
#: :func:`keras.distribution.initialize`).
NUM_PROCESSES_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"


def check_devices(devices: Any, batch_size: int) -> int | str | None:
    """``devices`` checked: None (one device), a positive int (a digit string is read as one:
    the flag's text), or ``"all"``; a count must divide ``batch_size``.

    Raises
    ------
    InvalidArgumentError
        Anything else, or a batch that does not split evenly.
    """
    if devices is None or devices == ALL:
        return devices
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise InvalidArgumentError(
            "`devices` must be a positive integer or 'all' (None: one device, no "
            f"distribution). Received: devices={devices!r}"
        )
    _check_split(batch_size, devices)
    return devices


def _check_split(batch_size: int, devices: int) -> None:
    if batch_size % devices:
        raise InvalidArgumentError(
            f"`batch_size` must divide by the number of devices (`devices`: {devices}): each "
            f"device takes an equal share of every batch. Received: batch_size={batch_size}; "
            f"choose e.g. --batch-size {max(devices, batch_size // devices * devices)}"
        )


@dataclass(frozen=True)
class DataParallelPlan:
    """A ``DataParallel`` run: ``devices`` in the mesh (every process's), this process's
    ``process_index`` among ``process_count`` (the shard of every epoch it serves)."""

    devices: int
    process_index: int = 0
    process_count: int = 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder (process 0)."""
        return self.process_index == 0

    def local_batch(self, batch_size: int) -> int:
        """Rows of each batch this process serves: its share of ``batch_size``."""
        return batch_size // self.process_count

    def chief_callback(self, callback: Any) -> Any:
        """``callback`` for the chief of several processes (the other processes run none):
        its hooks run :func:`undistributed`, so that what it saves needs no other process.
        For one process, ``callback`` itself."""
        if self.process_count == 1:
            return callback
        return _undistributed_callback(callback)


@contextlib.contextmanager
def undistributed() -> Iterator[None]:
    """Within: no Keras distribution. Saving a model (Keras 3.15's ``model.save``) creates a
    throwaway optimizer, whose variable a multi-process distribution would place with a
    collective that only the saving process joins (it hung: measured); the model's own
    variables are replicated, so each process reads them whole without the others."""
    import keras

    before = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)


def _undistributed_callback(callback: Any) -> Any:
    import keras

    class Undistributed(keras.callbacks.Callback):
        """``callback`` with every hook run :func:`undistributed`."""

        def set_model(self, model: Any) -> None:
            super().set_model(model)
            callback.set_model(model)

        def set_params(self, params: Any) -> None:
            super().set_params(params)
            callback.set_params(params)

    for name in dir(keras.callbacks.Callback):
        if name.startswith("on_"):

            def hook(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
                with undistributed():
                    return getattr(callback, _name)(*args, **kwargs)

            setattr(Undistributed, name, hook)
    return Undistributed()


def _processes() -> int:
    text = os.environ.get(NUM_PROCESSES_ENV, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgumentError(
            f"`{NUM_PROCESSES_ENV}` must be a positive integer. Received: {text!r}"
        )
    return int(text)


@contextlib.contextmanager
def data_parallel(devices: int | str | None, batch_size: int) -> Iterator[DataParallelPlan | None]:
    """Within: Keras' ``DataParallel`` distribution for ``devices`` is set, and the plan is
    given, or None (one device: ``devices`` None or 1 in a single process; nothing is set).
    Enter it before any model or JAX computation exists (a multi-process run starts
    ``jax.distributed`` here); the distribution before is restored on exit.

    Raises
    ------
    InvalidArgumentError
        The backend is not JAX, ``TF_CONFIG`` names a cluster too, more devices are asked
        for than exist, or ``batch_size`` does not split evenly.
    """
    processes = _processes()
    if devices in (None, 1) and processes == 1:
        yield None
        return
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise InvalidArgumentError(
            f"--devices trains with Keras' distribution API, which textvae runs on JAX: set "
            f"KERAS_BACKEND=jax (this run's backend is {backend}); on TensorFlow, train on "
            "several workers with TF_CONFIG. Received: "
            f"devices={devices!r}, {NUM_PROCESSES_ENV}={processes}"
        )
    if os.environ.get("TF_CONFIG", "").strip():
        raise InvalidArgumentError(
            "--devices and TF_CONFIG exclude each other: TF_CONFIG is TensorFlow's multi-worker "
            "training; unset it to train with Keras' distribution API on JAX"
        )
    if processes > 1:
        keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_* (jax.distributed)
    import jax

    available = jax.devices()
    count = len(available) if devices in (None, ALL) else int(devices)
    if count > len(available):
        raise InvalidArgumentError(
            f"--devices {count}: JAX sees {len(available)} device(s) "
            f"({available[0].platform}); ask for at most {len(available)} or 'all' (on CPU, "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N makes N of them)"
        )
    if processes > 1 and count != len(available):
        raise InvalidArgumentError(
            f"--devices {count}: a run of {processes} processes uses every device of every "
            f"process ({len(available)}): pass --devices all"
        )
    _check_split(batch_size, count)
    before = keras.distribution.distribution()
    # The Sequence shards the rows itself (one shard per process): Keras' own dataset
    # sharding (for tf.data only) stays off.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=available[:count], auto_shard_dataset=False)
    )
    try:
        yield DataParallelPlan(count, jax.process_index(), jax.process_count())
    finally:
        keras.distribution.set_distribution(before)
