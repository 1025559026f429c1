"""``textvae-train --devices`` under Keras' JAX backend, for test_devices.py (not a test file).

``KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 python devices_worker.py
STORE OUT ARGS... [:: ARGS...]``: ``textvae-train`` runs into OUT, one per ``::``-separated
group of ARGS (after the tiny model's flags; a later one may ``--resume``), then one JSON line:
the devices JAX sees, every run's exit code, and the last run's ``history.csv`` rows, its
``metrics.json`` and the weights of its ``last.keras`` (lists of floats), so the test compares
runs of different processes.

Keras reads ``KERAS_BACKEND`` once, at import, and XLA its flags once, when JAX starts: each
configuration needs a process of its own.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import keras

from textvae.cli import train_main
from textvae.testing import TINY_TRAIN_ARGS


def main(store: str, out: str, *args: str) -> None:
    assert keras.backend.backend() == "jax"
    runs: list[list[str]] = [[]]
    for arg in args:
        runs.append([]) if arg == "::" else runs[-1].append(arg)
    codes = [train_main(["--data", store, "--out", out, *TINY_TRAIN_ARGS, *a]) for a in runs]
    code = codes[-1]
    run = Path(out)
    result = {"devices": jax.device_count(), "process": jax.process_index(), "codes": codes}
    if code == 0 and (run / "history.csv").exists():
        result["history"] = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    if code == 0 and (run / "metrics.json").exists():
        result["metrics"] = json.loads((run / "metrics.json").read_text())
    if code == 0 and (run / "last.keras").exists():
        model = keras.saving.load_model(run / "last.keras")
        result["weights"] = [w.tolist() for w in model.get_weights()]
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
