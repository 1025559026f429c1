"""Backends table: what each Keras backend's train step receives from OneHotSequence, and at
what cost per batch.

    python benchmarks/backends.py --full     # (64, 300, 20000) float32 and uint8 (IMDB store)
    python benchmarks/backends.py            # small sizes, seconds (CI runs it so)

Keras reads ``KERAS_BACKEND`` once, at import: every installed backend (tensorflow, jax, torch)
runs in a process of its own. In each, one shuffled ``OneHotSequence`` (no worker threads, so
the time is the consumer's) feeds the path ``model.fit`` takes on that backend, and a round is
one batch pulled and dropped, as ``fit`` does. Rows (mean ms per batch over the timed rounds,
after warm-up; a cold buffer costs page faults):

- ``seq[i]``: the batch alone (store read + kernel into a recycled buffer): the floor;
- tensorflow: Keras' ``PyDatasetAdapter.get_tf_dataset()`` (``tf.data.Dataset.from_generator``),
  and ``seq.as_tf_dataset()``;
- jax: ``PyDatasetAdapter.get_jax_iterator()`` (a CPU ``fit`` hands that NumPy batch to the
  jitted step as it is), then ``jax.device_put`` of it (what ``fit`` does on an accelerator;
  measured here on the CPU device);
- torch: ``PyDatasetAdapter.get_torch_dataloader()`` (``fit(seq)``: Keras'
  ``convert_to_tensor`` calls ``np.array(x)``), and ``seq.as_torch_dataloader()`` given to
  ``fit`` (Keras' ``TorchDataLoaderAdapter`` passes its tensors through).

``copies``: whether the one-hot tensor delivered does not share the Sequence's pooled buffer
(compared by data pointer). ``--json PATH`` also writes the rows.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")
#: (batch, store) of each size: the store's (rows, vocab, max_len), or "imdb".
SIZES = {"small": (8, (2000, 2000, 50)), "full": (64, "imdb")}


def _store_path(size: str) -> str:
    sys.path.insert(0, str(HERE))
    from synthetic import cached_synthetic_store, imdb_store

    _, store = SIZES[size]
    if store == "imdb":
        return imdb_store(vocab_size=20000, max_len=300).path
    rows, vocab, max_len = store
    return cached_synthetic_store(rows, vocab_size=vocab, max_len=max_len).path


# -- in the child process (KERAS_BACKEND set) -------------------------------------------------
def _pointer(x) -> int:
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if hasattr(x, "unsafe_buffer_pointer"):  # jax
        return x.unsafe_buffer_pointer()
    if hasattr(x, "data_ptr"):  # torch
        return x.data_ptr()
    return x._numpy().ctypes.data  # tensorflow (.numpy() returns a copy; ._numpy() does not)


def _time_path(make_iterator, seq, rounds: tuple[int, int]) -> tuple[float, bool]:
    """Mean seconds per batch pulled from ``make_iterator()``, and whether the delivered
    one-hot batch is a copy (its pointer is that of no batch the sequence served)."""
    warmup, timed = rounds
    iterator = make_iterator()
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(timed):
        next(iterator)  # dropped at once, as fit drops each batch after its step
    seconds = (time.perf_counter() - start) / timed
    batch = next(iterator)  # maybe served before this call (prefetch): compare with all served
    copies = _pointer(batch[1]["reconstruction"]) not in seq.served
    del batch, iterator
    gc.collect()
    return seconds, copies


def child(store: str, batch_size: int, dtypes: list[str], rounds: tuple[int, int]) -> list[dict]:
    import keras
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from textvae.batching import MemoryOptions, OneHotSequence

    backend = keras.backend.backend()

    class Recorded(OneHotSequence):
        """Records the data pointer of every one-hot batch it serves."""

        def __getitem__(self, index):
            batch = super().__getitem__(index)
            self.served.add(batch[1]["reconstruction"].ctypes.data)
            return batch

    def sequence(dtype: str) -> OneHotSequence:
        # pool_size 3: what these serial paths need (the batch pulled, the next, one ahead),
        # so a (64, 300, 20000) float32 run holds at most ~4.5 GB of buffers.
        seq = Recorded(
            store, "train", batch_size, dtype=dtype, seed=0, memory=MemoryOptions(pool_size=3)
        )
        seq.served = set()
        return seq

    def adapter_path(method: str):
        def run(seq):
            adapter = PyDatasetAdapter(seq, shuffle=False)
            adapter.on_epoch_begin()
            data = getattr(adapter, method)()
            if method == "get_tf_dataset":
                import tensorflow as tf

                options = tf.data.Options()
                options.autotune.ram_budget = 4 << 30  # prefetch(AUTOTUNE) of 1.5 GB batches
                data = data.with_options(options)
            return iter(data)

        return run

    paths: dict[str, object] = {"seq[i]": lambda seq: (seq[i] for i in range(len(seq)))}
    if backend == "tensorflow":
        paths["fit(seq): PyDataset adapter -> tf.data"] = adapter_path("get_tf_dataset")
        paths["seq.as_tf_dataset()"] = lambda seq: iter(seq.as_tf_dataset())
    elif backend == "jax":
        import jax

        paths["fit(seq) on CPU: jax iterator (NumPy)"] = adapter_path("get_jax_iterator")

        def device_put(seq):
            iterator = adapter_path("get_jax_iterator")(seq)
            return (jax.tree.map(jax.device_put, b) for b in iterator)

        paths["fit(seq) on a device: + jax.device_put"] = device_put
    elif backend == "torch":
        from keras.src.trainers.data_adapters.torch_data_loader_adapter import (
            TorchDataLoaderAdapter,
        )

        paths["fit(seq): PyDataset adapter -> torch"] = adapter_path("get_torch_dataloader")

        def loader(seq):
            adapter = TorchDataLoaderAdapter(seq.as_torch_dataloader())
            return iter(adapter.get_torch_dataloader())

        paths["fit(seq.as_torch_dataloader())"] = loader
    rows = []
    for dtype, (name, make) in itertools.product(dtypes, paths.items()):
        seq = sequence(dtype)
        seconds, copies = _time_path(lambda make=make, seq=seq: make(seq), seq, rounds)
        rows.append(
            {
                "backend": backend,
                "path": name,
                "dtype": dtype,
                "shape": [batch_size, seq.max_len, seq.vocab_size],
                "ms_per_batch": seconds * 1e3,
                "copies": None if name == "seq[i]" else copies,
            }
        )
        del seq
        gc.collect()
    return rows


# -- in the parent ----------------------------------------------------------------------------
def run_backend(
    backend: str, store: str, batch_size: int, dtypes: list[str], rounds: tuple[int, int]
) -> list[dict]:
    """The rows of one backend, measured in a fresh process with ``KERAS_BACKEND=backend``."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    root = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", store]
    command += ["--batch-size", str(batch_size), "--dtypes", *dtypes]
    command += ["--rounds", str(rounds[0]), str(rounds[1])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def table(rows: list[dict]) -> str:
    """A Markdown table of ``rows``: backend, path, dtype, ms per batch, copies."""
    lines = [
        "| backend | path | dtype | ms / batch | copies the batch |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        copies = {None: "", True: "**yes**", False: "no"}[r["copies"]]
        lines.append(
            f"| {r['backend']} | {r['path']} | {r['dtype']} | {r['ms_per_batch']:.2f} | {copies} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="(64, 300, 20000) batches")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "uint8"])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every installed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, nargs=2, default=(2, 5), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        rows = child(args.child, args.batch_size, args.dtypes, tuple(args.rounds))
        print(json.dumps(rows))
        return 0
    size = "full" if args.full else "small"
    batch_size = SIZES[size][0]
    rounds = (3, 10) if args.full else (2, 5)
    store = _store_path(size)
    rows = []
    for backend in args.backends or installed_backends():
        rows += run_backend(backend, store, batch_size, args.dtypes, rounds)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
