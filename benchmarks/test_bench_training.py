"""Does the data pipeline starve training? The share of a `fit` step spent waiting for data.

Each case times `fit` steps of the text VAE fed by `OneHotSequence` (Keras' PyDataset path, 2
thread workers) beside the same steps fed one batch already in memory (`tf.data` repeating a
constant batch: no data work at all). Keras' train function pulls the next batch inside the
step, so the per-batch time (callback begin -> end) holds compute plus any wait:

    wait share = (step with OneHotSequence - step with a constant batch) / step with OneHotSequence

DESIGN.md's target: < 5% of a training step waiting for data (issue 10: < 2%). Full size
(``--full``): the quick preset (vocab 20,000, max_len 100, hidden 64, latent 32, batch 16, 100
timed steps) and the seed's model (vocab 20,000, max_len 300, hidden 500, latent 200, batch 32:
about 10 s a step here, so 3 steps unless ``TEXTVAE_BENCH_STEPS`` says more), one-hot and
sparse targets, the default model (autoregressive decoder, bag-of-words loss). Small otherwise.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from timing import step_timer

from textvae.batching.sequence import OneHotSequence
from textvae.model.vae import build_vae

SIZES = {
    # name: (vocab, max_len, model kwargs, batch, timed steps)
    "tiny": (2000, 50, {"embedding_dim": 16, "hidden": 16, "dense": 16, "latent": 8}, 32, 4),
    # The quick preset's model (batch 16) on rows of 100 ids, as it ran before its target
    # window (the preset now reads 400 and reconstructs 100), over 100 timed steps.
    "quick": (20000, 100, {"embedding_dim": 64, "hidden": 64, "dense": 64, "latent": 32}, 16, 100),
    "seed": (20000, 300, {}, 32, 3),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        full = metafunc.config.getoption("--full")
        names = ["quick", "seed"] if full else ["tiny"]
        metafunc.parametrize("size", names)


def _step_seconds(model, data, steps: int) -> float:
    timer = step_timer()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer], shuffle=False)
    return float(np.median(timer.times))


@pytest.mark.parametrize("targets", ["onehot", "sparse"])
def test_data_wait_share(benchmark, size, targets):
    import tensorflow as tf
    from synthetic import cached_synthetic_store, imdb_store

    vocab, max_len, model_kwargs, batch, steps = SIZES[size]
    steps = int(os.environ.get("TEXTVAE_BENCH_STEPS", steps))  # e.g. 100 for the seed's model
    store = (
        cached_synthetic_store(2000, vocab_size=vocab, max_len=max_len)
        if size == "tiny"
        else imdb_store(vocab_size=vocab, max_len=max_len)
    )
    benchmark.group = f"training step {size} {targets}"
    seq = OneHotSequence(store, "train", batch, targets=targets, workers=2, max_queue_size=2)
    model = build_vae(vocab, max_len, targets=targets, sentiment_weight=200.0, **model_kwargs)
    model.fit(seq, epochs=1, steps_per_epoch=2, verbose=0)  # trace and warm up
    ids, outputs = seq[0]
    constant = tf.data.Dataset.from_tensors(
        (ids, {k: np.array(v) for k, v in outputs.items()})
    ).repeat()
    result: dict[str, float] = {}

    def run() -> None:
        result["sequence"] = _step_seconds(model, seq, steps)
        result["constant"] = _step_seconds(model, constant, steps)

    benchmark.pedantic(run, rounds=1, iterations=1)
    share = max(0.0, (result["sequence"] - result["constant"]) / result["sequence"])
    benchmark.extra_info.update(
        step_s_sequence=round(result["sequence"], 4),
        step_s_constant_batch=round(result["constant"], 4),
        wait_share=round(share, 4),
    )
    assert result["sequence"] > 0 and result["constant"] > 0
