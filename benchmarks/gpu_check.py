"""GPU check: the seed's full-size text VAE trained for a few hundred steps, one table.

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --store STORE --size seed --steps 300
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --size gpu --cases sparse "onehot on device"

For each way of feeding the reconstruction targets it trains a fresh model and prints: the
median step time, the share of a step spent waiting for data (the step fed by
``OneHotSequence`` against the same step fed one batch already in memory), the bytes handed to
the device per step, the peak host RSS and the peak device memory:

- ``onehot float32`` / ``onehot uint8``: one-hot batches built on the host by the kernels;
- ``sparse``: the ids themselves, ``sparse_categorical_crossentropy``;
- ``onehot on device``: the ids sent, expanded to one-hot float32 on the device inside the loss
  (``keras.ops.one_hot``): the same expansion, done on the device instead of the host.

It imports no TensorFlow on the JAX or torch backends (the lent GPU machines have JAX and
PyTorch but no TensorFlow). ``--size gpu`` is ``textvae-train --preset gpu``'s model, batch,
decoder cell and batch-building threads, read from :data:`textvae.config.GPU` (one source of
truth); ``--decoder-cell`` overrides a size's cell (the GPU preset's LSTM against a GRU). At
``--size gpu`` a host one-hot float32 batch is 3.1 GB and up to workers + queue (16) of them
are in host memory at once: run ``--cases sparse "onehot on device"`` first.
``--size tiny`` runs in seconds on a CPU (CI runs it that way, ``benchmarks/test_gpu_check.py``).
Without ``--store`` a synthetic store is built (cached under ``$TEXTVAE_BENCH_DIR``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import step_timer

from textvae.config import GPU

#: The model arguments a preset may set, passed to build_vae as they are.
_MODEL_KEYS = ("embedding_dim", "hidden", "dense", "latent", "decoder_cell")


def _from_preset(preset: dict[str, Any]) -> tuple[int, int, dict[str, Any], int]:
    """A preset's (vocab, max_len, model kwargs, batch), as :data:`SIZES` holds them."""
    model = {k: preset[k] for k in _MODEL_KEYS if k in preset}
    return preset["vocab_size"], preset["max_len"], model, preset["batch_size"]


#: name: (vocab, max_len, model kwargs, batch)
SIZES: dict[str, tuple[int, int, dict[str, Any], int]] = {
    "tiny": (500, 20, {"embedding_dim": 8, "hidden": 8, "dense": 8, "latent": 4}, 8),
    "quick": (20000, 100, {"embedding_dim": 64, "hidden": 64, "dense": 64, "latent": 32}, 16),
    "seed": (20000, 300, {"embedding_dim": 64, "hidden": 500, "dense": 435, "latent": 200}, 32),
    "gpu": _from_preset(GPU),
}
#: Batch-building threads and batches kept ready per size (the preset's for ``gpu``).
FEED: dict[str, tuple[int, int]] = {"gpu": (GPU["workers"], GPU["max_queue_size"])}
CASES = ("onehot float32", "onehot uint8", "sparse", "onehot on device")


def _device_memory_peak() -> int | None:
    """Peak bytes in use on the first accelerator, where the backend says (else None)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            return int((device.memory_stats() or {}).get("peak_bytes_in_use", 0)) or None
        if backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
        if backend == "tensorflow":
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                return None
            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception:  # a backend without memory statistics: report none
        return None
    return None


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _one_batch(batch: tuple[Any, Any], steps: int):
    """A PyDataset that serves one in-memory batch ``steps`` times: no data work at all."""
    import keras

    class Constant(keras.utils.PyDataset):
        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int):
            return batch

    return Constant()


def _device_onehot_loss(vocab_size: int) -> Any:
    from keras import ops

    from textvae.model.vae import ReconstructionLoss

    class DeviceOneHot(ReconstructionLoss):
        """The one-hot loss, its targets expanded from ids on the device."""

        def call(self, y_true, y_pred):
            onehot = ops.one_hot(ops.cast(y_true, "int32"), vocab_size, dtype="float32")
            return super().call(onehot, y_pred)

    return DeviceOneHot(sparse=False)


def run_case(
    case: str, store: Any, size: str, steps: int, warmup: int, decoder_cell: str | None = None
) -> dict[str, Any]:
    """Train a fresh model ``steps`` steps fed as ``case`` says; its row of the table.
    ``decoder_cell`` overrides the size's (``None``: the size's, else the model's default)."""
    import keras

    from textvae.batching.sequence import OneHotSequence
    from textvae.model.vae import build_vae

    vocab, max_len, model_kwargs, batch = SIZES[size]
    if decoder_cell is not None:
        model_kwargs = {**model_kwargs, "decoder_cell": decoder_cell}
    workers, queue = FEED.get(size, (2, 2))
    targets = "onehot" if case.startswith("onehot") and case != "onehot on device" else "sparse"
    dtype = "uint8" if case == "onehot uint8" else "float32"
    keras.utils.set_random_seed(0)
    model = build_vae(vocab, max_len, targets=targets, **model_kwargs)
    if case == "onehot on device":
        losses, weights = model.losses_for_compile()
        losses["reconstruction"] = _device_onehot_loss(vocab)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=losses, loss_weights=weights
        )
    seq = OneHotSequence(
        store, "train", batch, targets=targets, dtype=dtype, workers=workers, max_queue_size=queue
    )
    model.fit(seq, epochs=1, steps_per_epoch=warmup, verbose=0, shuffle=False)  # trace, warm up
    x, y = seq[0]
    bytes_per_step = int(x.nbytes + sum(np.asarray(v).nbytes for v in y.values()))
    timer = step_timer()
    model.fit(seq, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer], shuffle=False)
    with_data = float(np.median(timer.times))
    constant = step_timer()
    in_memory = (x, {k: np.array(v) for k, v in y.items()})
    model.fit(_one_batch(in_memory, steps), epochs=1, verbose=0, callbacks=[constant])
    compute = float(np.median(constant.times))
    return {
        "case": case,
        "step_ms": 1000 * with_data,
        "wait_share": max(0.0, (with_data - compute) / with_data),
        "bytes_per_step": bytes_per_step,
        "peak_rss_gb": _peak_rss_bytes() / 1e9,
        "peak_device_gb": (lambda b: None if b is None else b / 1e9)(_device_memory_peak()),
        "device": _device_name(),  # the child's: its backend is KERAS_BACKEND's
        "decoder_cell": model.decoder_cell,
    }


def format_table(rows: list[dict[str, Any]], header: str) -> str:
    """The rows as a Markdown table under a line naming the machine and backend."""
    lines = [
        header,
        "",
        "| targets | step ms | waiting for data | to the device per step | peak host RSS "
        "| peak device memory |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        device = "n/a" if r["peak_device_gb"] is None else f"{r['peak_device_gb']:.2f} GB"
        lines.append(
            f"| {r['case']} | {r['step_ms']:.1f} | {r['wait_share']:.1%} | "
            f"{r['bytes_per_step'] / 1e6:.3f} MB | {r['peak_rss_gb']:.2f} GB | {device} |"
        )
    return "\n".join(lines)


def _device_name() -> str:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return f"{jax.devices()[0].device_kind} (JAX)"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"{torch.cuda.get_device_name(0)} (torch)"
    except Exception:  # no accelerator information: say the backend only
        pass
    return f"CPU ({backend})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="a token store (default: a synthetic one of --size)")
    parser.add_argument("--size", choices=sorted(SIZES), default="seed")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument(
        "--decoder-cell",
        choices=("gru", "lstm"),
        help="the decoder's recurrence (default: the size's; gpu: lstm, the others gru)",
    )
    parser.add_argument("--one-case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be positive integers")
    vocab, max_len, _, _ = SIZES[args.size]
    if args.store:
        from textvae.data.store import TokenStore

        store: Any = TokenStore.open(args.store, vocab_size=vocab, max_len=max_len)
    else:
        from synthetic import cached_synthetic_store

        rows_needed = (args.steps + args.warmup + 1) * SIZES[args.size][3]
        store = cached_synthetic_store(max(2000, rows_needed), vocab_size=vocab, max_len=max_len)
    if args.one_case:  # a child process: one case, one JSON line (its own peak RSS)
        row = run_case(args.one_case, store, args.size, args.steps, args.warmup, args.decoder_cell)
        print("ROW " + json.dumps(row))
        return 0
    rows = []
    for case in args.cases:
        argv_case = (
            [*sys.argv[1:], "--one-case", case] if argv is None else [*argv, "--one-case", case]
        )
        if args.store is None:
            argv_case += ["--store", str(store.path)]
        done = subprocess.run(
            [sys.executable, __file__, *argv_case], capture_output=True, text=True, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if done.returncode or not lines:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode or 1
        rows.append(json.loads(lines[-1][4:]))
    header = (
        f"{rows[0]['device']}, size {args.size}, {rows[0]['decoder_cell']} decoder, "
        f"{args.steps} steps per case"
    )
    print(format_table(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
