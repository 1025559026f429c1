"""The quick preset's training step: XLA or not, and lighter encoders.

``test_xla_step_against_graph_step``: the median ``fit`` step of the quick preset's model with
Keras' steps traced into a graph (``jit_compile=False``, Keras' choice for TensorFlow on a CPU)
and compiled with XLA (``textvae-train --jit-compile on``, the quick preset's setting).
``test_encoder_layers_step``: the XLA step with the encoder's two BiLSTM layers (the default),
one (``--encoder-layers 1``) and none (``--encoder-layers 0``: the pooled branches alone).

Each times the same model from the same weights on one batch repeated (``tf.data``: no data
work), so the ratios are the step's compute alone. Full size (``--full``): the quick preset
(``textvae-train --quick``: IMDB, vocab 20,000, rows of 400 ids, a target window of 100, hashed
bigrams, sparse targets, hidden 64, batch 16), 40 timed steps after 3 warm-up steps. Small
otherwise (tiny sizes, 4 steps, only with ``--benchmark-only``): the harness runs, the ratios
mean little.
"""

from __future__ import annotations

import numpy as np
import pytest
from timing import step_timer

from textvae.batching.sequence import OneHotSequence

SIZES = {
    # name: (vocab, max_len, flags after --quick, timed steps)
    "tiny": (
        2000,
        50,
        ["--target-window", "20", "--hidden", "16", "--dense", "16", "--latent", "8"],
        4,
    ),
    "quick": (20000, 400, [], 40),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        metafunc.parametrize("size", ["quick"] if metafunc.config.getoption("--full") else ["tiny"])


# Two XLA compilations even at the tiny size (about 30 s on 2 cores): kept out of the test
# suite's run; tests/training/test_jit_compile.py tests the XLA step itself.
pytestmark = pytest.mark.skipif(
    "not config.getoption('--full') and not config.getoption('--benchmark-only')",
    reason="two XLA compilations: run with --full or --benchmark-only",
)


def _median_step(config, store, data, jit: bool, steps: int) -> float:
    import keras

    from textvae.training.trainer import _new_model

    keras.utils.set_random_seed(0)
    model = _new_model(config, store, steps)
    model.jit_compile = jit
    # trace (and compile) first
    model.fit(data, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
    timer = step_timer()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer], shuffle=False)
    return float(np.median(timer.times))


def _setup(size: str):
    """The size's store, its quick-preset config and one batch repeated (``tf.data``)."""
    import tensorflow as tf
    from synthetic import cached_synthetic_store, imdb_store

    from textvae.cli import train_config_from_args

    vocab, max_len, flags, steps = SIZES[size]
    store = (
        cached_synthetic_store(500, vocab_size=vocab, max_len=max_len)
        if size == "tiny"
        else imdb_store(vocab_size=vocab, max_len=max_len)
    )
    argv = ["--quick", "--vocab", str(vocab), "--max-len", str(max_len), *flags]
    config = train_config_from_args(argv)
    seq = OneHotSequence(
        store,
        "train",
        config.batch_size,
        targets=config.targets,
        target_window=config.model.target_window,
    )
    ids, outputs = seq[0]
    data = tf.data.Dataset.from_tensors((ids, {k: np.array(v) for k, v in outputs.items()}))
    return store, config, data.repeat(), steps


def test_xla_step_against_graph_step(benchmark, size):
    store, config, data, steps = _setup(size)
    benchmark.group = f"xla step {size}"
    result: dict[str, float] = {}

    def run() -> None:
        result["graph"] = _median_step(config, store, data, False, steps)
        result["xla"] = _median_step(config, store, data, True, steps)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        step_s_graph=round(result["graph"], 4),
        step_s_xla=round(result["xla"], 4),
        graph_over_xla=round(result["graph"] / result["xla"], 3),
    )
    assert result["graph"] > 0 and result["xla"] > 0


def test_encoder_layers_step(benchmark, size):
    store, config, data, steps = _setup(size)
    benchmark.group = f"encoder layers step {size}"
    result: dict[int, float] = {}

    def run() -> None:
        for layers in (2, 1, 0):
            lighter = config.replace(encoder_layers=layers)
            result[layers] = _median_step(lighter, store, data, True, steps)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({f"step_s_layers_{k}": round(v, 4) for k, v in result.items()})
    benchmark.extra_info.update(
        {f"layers_{k}_over_2": round(result[k] / result[2], 3) for k in (1, 0)}
    )
    assert all(t > 0 for t in result.values())
