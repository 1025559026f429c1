"""The backends table (``backends.py``): per-batch hand-off cost and copies, every backend.

Each installed backend runs in a process of its own (Keras reads ``KERAS_BACKEND`` once), but
the one this process already runs (TensorFlow under pytest) is measured here. The
default size is small ((8, 50, 2000), seconds: CI runs it); ``--full`` measures
(64, 300, 20000) float32 and uint8 from the IMDB store. The means join the throughput ratios
printed at the end of the run; ``python benchmarks/backends.py --full`` prints the table alone.
torch is skipped where it is not installed.
"""

from __future__ import annotations

import importlib.util

import keras
import pytest
from backends import child, run_backend, table

#: Paths that hand the Sequence's buffer over as it is (False) or copy it (True).
COPIES = {
    "fit(seq): PyDataset adapter -> tf.data": False,
    "seq.as_tf_dataset()": False,
    "fit(seq) on CPU: jax iterator (NumPy)": False,
    "fit(seq) on a device: + jax.device_put": False,
    "fit(seq): PyDataset adapter -> torch": True,  # Keras' convert_to_tensor: np.array(x)
    "fit(seq.as_torch_dataloader())": False,
}


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_backend_handoff(backend, train_store, full, pipeline_results):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    batch = 64 if full else 8
    rounds = (3, 10) if full else (2, 5)
    dtypes = ["float32", "uint8"]
    if backend == keras.backend.backend():  # this process's backend: no process to start
        rows = child(train_store.path, batch, dtypes, rounds)
    else:
        rows = run_backend(backend, train_store.path, batch, dtypes, rounds)
    print("\n" + table(rows))
    paths = {r["path"] for r in rows if r["path"] != "seq[i]"}
    assert paths and paths <= set(COPIES), paths
    for row in rows:
        assert row["shape"] == [batch, train_store.max_len, train_store.vocab_size]
        assert row["ms_per_batch"] > 0
        if row["path"] != "seq[i]":
            assert row["copies"] is COPIES[row["path"]], row
        group = f"backend hand-off {'x'.join(map(str, row['shape']))} {row['dtype']}"
        pipeline_results[(group, f"{backend}: {row['path']}")] = row["ms_per_batch"] / 1e3
