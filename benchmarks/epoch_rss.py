"""One epoch of OneHotSequence through Keras' PyDataset path, in a fresh process: peak RSS.

Run by ``test_bench_sequence.py::test_epoch_peak_rss`` (a process of its own, so that the
peak belongs to this epoch alone)::

    python benchmarks/epoch_rss.py STORE [--batch-size 64] [--targets onehot] [--dtype float32]
        [--workers 2] [--max-queue-size 2|default] [--consumer-seconds 0] [--batches N]
        [--rss-limit-mb MB] [--target-window W]

``--max-queue-size default`` leaves it to the sequence (its memory budget picks it);
``--consumer-seconds`` sleeps after each batch (a slow model); ``--batches`` stops after that
many; ``--rss-limit-mb`` stops the process as soon as its RSS passes the limit (a watchdog
thread, for configurations that would otherwise take the machine's memory) and reports it;
``--target-window`` builds the targets for the last W positions only (the Sequence's
``target_window``).

Prints one JSON line: ``batches``, ``rows``, ``seconds``, ``peak_rss_mb`` (``VmHWM``: the
peak of this process's own memory), ``maxrss_mb`` (``ru_maxrss``), ``rss_before_mb`` (after
imports and the first batches, before the epoch) and ``pool_buffers`` (one-hot buffers the
sequence allocated). ``ru_maxrss`` is not this process's alone: Linux carries the high-water
mark across ``execve``, so a child of a large parent (pytest holding GBs) reports at least the
parent's RSS at fork time; ``VmHWM`` belongs to the new address space only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--targets", default="onehot", choices=["onehot", "sparse"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-queue-size", default="2", help="an integer, or 'default'")
    parser.add_argument("--consumer-seconds", type=float, default=0.0)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--rss-limit-mb", type=float, default=None)
    parser.add_argument("--target-window", type=int, default=None)
    args = parser.parse_args(argv)
    queue = {} if args.max_queue_size == "default" else {"max_queue_size": int(args.max_queue_size)}
    consumed = [0]
    if args.rss_limit_mb is not None:
        _watch(args.rss_limit_mb, consumed)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from textvae.batching.sequence import OneHotSequence

    seq = OneHotSequence(
        args.store,
        "train",
        args.batch_size,
        targets=args.targets,
        dtype=args.dtype,
        shuffle=True,
        seed=0,
        workers=args.workers,
        target_window=args.target_window,
        **queue,
    )
    adapter = PyDatasetAdapter(seq, shuffle=False)
    dataset = adapter.get_tf_dataset()  # reads a few batches for the tensor spec
    rss_before = _rss_mb()
    adapter.on_epoch_begin()
    batches = rows = 0
    start = time.perf_counter()
    for ids, _targets in dataset:  # as model.fit holds them: one batch at a time
        batches += 1
        consumed[0] = batches
        rows += int(ids.shape[0])
        if args.consumer_seconds:
            time.sleep(args.consumer_seconds)
        if args.batches is not None and batches >= args.batches:
            break
    seconds = time.perf_counter() - start
    pool = getattr(seq, "_pool", None)  # read before the epoch's end lets it go
    adapter.on_epoch_end()
    result = {
        "batches": batches,
        "expected_batches": len(seq),
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "pool_buffers": getattr(pool, "allocations", None),
        "max_queue_size": seq.max_queue_size,
        "stopped_at_limit": False,
    }
    print(json.dumps(result), flush=True)
    return 0


def _watch(limit_mb: float, consumed: list[int]) -> None:
    """Stop this process (exit code 3, one JSON line) as soon as its RSS passes ``limit_mb``."""

    def watch() -> None:
        while True:
            rss = _rss_mb()
            if rss > limit_mb:
                result = {
                    "stopped_at_limit": True,
                    "rss_mb": rss,
                    "peak_rss_mb": _peak_rss_mb(),
                    "batches": consumed[0],
                }
                print(json.dumps(result), flush=True)
                os._exit(3)
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
