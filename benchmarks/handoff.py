"""Where a one-hot `fit` step's data time goes, at the quick preset (vocab 20,000, max_len 100,
batch 16, the default model): the median step fed by

- a constant `tf.data` batch (no data work at all);
- a `PyDataset` serving one precomputed batch, 64-byte aligned (Keras' adapter, no store, no
  kernel) and the same batch unaligned (NumPy's 16-byte alignment: TensorFlow copies it);
- `OneHotSequence` (store reads and the one-hot kernel on 2 worker threads).

    python benchmarks/handoff.py [--steps 60] [--rounds 2]     # IMDB from ../shared/data/imdb

A script, not a test: each round takes minutes on a 2-core CPU. README "Performance" quotes it.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from synthetic import imdb_store
from timing import step_timer

from textvae.batching.sequence import OneHotSequence
from textvae.kernels import aligned_empty
from textvae.model.vae import build_vae

VOCAB, MAX_LEN, BATCH = 20000, 100, 16
MODEL = {"embedding_dim": 64, "hidden": 64, "dense": 64, "latent": 32}


class _Fixed(keras.utils.PyDataset):
    """One batch, served forever through Keras' PyDataset adapter."""

    def __init__(self, batch) -> None:
        super().__init__(workers=2, max_queue_size=2)
        self.batch = batch

    def __len__(self) -> int:
        return 10**6

    def __getitem__(self, index: int):
        return self.batch


def _aligned(array: np.ndarray) -> np.ndarray:
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


def main() -> None:
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    store = imdb_store(vocab_size=VOCAB, max_len=MAX_LEN)
    seq = OneHotSequence(store, "train", BATCH, workers=2, max_queue_size=2)
    model = build_vae(VOCAB, MAX_LEN, targets="onehot", **MODEL)
    model.fit(seq, epochs=1, steps_per_epoch=3, verbose=0)  # trace
    ids, outputs = seq[0]
    aligned = (_aligned(ids), {k: _aligned(np.asarray(v)) for k, v in outputs.items()})
    unaligned = (np.array(ids), {k: np.array(v) for k, v in outputs.items()})

    def step_ms(data) -> float:
        timer = step_timer()
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[timer])
        return 1000 * float(np.median(timer.times[2:]))

    for round_ in range(args.rounds):
        feeds = {
            "constant tf.data batch": tf.data.Dataset.from_tensors(aligned).repeat(),
            "PyDataset, one aligned batch": _Fixed(aligned),
            "PyDataset, one unaligned batch": _Fixed(unaligned),
            "OneHotSequence, 2 workers": seq,
        }
        times = {name: round(step_ms(feed), 1) for name, feed in feeds.items()}
        print(f"round {round_ + 1}: median ms a step: {times}", flush=True)


if __name__ == "__main__":
    main()
