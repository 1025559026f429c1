"""``--jit-compile auto|on|off``: Keras' steps compiled with XLA or not. XLA must compute the
same loss as the traced graph (the quick preset turns it on for its 1.6x faster steps on a CPU),
and the option must reach the model that ``textvae-train`` fits and evaluates."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.batching.sequence import OneHotSequence
from textvae.cli import EXIT_USER_ERROR, train_config_from_args, train_main
from textvae.data import StoreSpec
from textvae.model.vae import build_vae
from textvae.testing import TINY_TRAIN_ARGS
from textvae.training.callbacks import RunCheckpoint
from textvae.training.trainer import _step_options

pytestmark = pytest.mark.slow  # each case compiles a model with XLA (seconds)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from textvae.data import build_store
    from textvae.data.discover import open_corpus
    from textvae.testing import random_reviews, write_jsonl

    root = tmp_path_factory.mktemp("jit")
    rng = np.random.default_rng(11)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 40, max_words=30))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12, max_words=30))
    spec = StoreSpec(vocab_size=30, max_len=24, chunk_rows=8)
    return build_store(root / "s.zarr", open_corpus(root / "c"), spec=spec)


def _model(store):
    # The quick preset's parts at a toy size: a target window, hashed bigrams, the step's
    # position, word dropout and the bag-of-words loss (ModelConfig's defaults).
    return build_vae(
        store.vocab_size,
        store.max_len,
        embedding_dim=8,
        hidden=8,
        dense=8,
        latent=4,
        targets="sparse",
        truncating=store.truncating,
        target_window=12,
        bigram_buckets=64,
        seed=0,
    )


def test_an_xla_step_computes_the_graph_steps_loss(store):
    # The quick preset's case: sparse targets, a GRU decoder (one XLA compilation costs about
    # 20 s here; the LSTM decoder's XLA path is what JAX, the GPU preset's backend, always runs).
    batch = OneHotSequence(store, "train", 16, targets="sparse", target_window=12, shuffle=False)
    ids, outputs = batch[0]
    model = _model(store)
    model.jit_compile = False
    graph = model.test_on_batch(ids, outputs, return_dict=True)
    model.jit_compile = True
    model.test_function = None  # built again from jit_compile on the next call
    xla = model.test_on_batch(ids, outputs, return_dict=True)
    assert set(xla) == set(graph)
    for name, value in graph.items():
        np.testing.assert_allclose(xla[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    # and XLA trains: a step changes the weights and the loss stays finite
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(ids, outputs, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize(
    ("flags", "jit", "eager"),
    [
        (["--jit-compile", "on"], True, False),
        (["--jit-compile", "off"], False, False),
        (["--jit-compile", "on", "--run-eagerly"], False, True),
    ],
)
def test_step_options_set_the_models_step_functions(store, flags, jit, eager):
    model = _model(store)
    model.jit_compile = not jit  # the option, not the model's default, decides
    _step_options(model, train_config_from_args(flags))
    assert model.jit_compile is jit
    assert model.run_eagerly is eager


def test_auto_leaves_keras_choice(store):
    model = _model(store)
    keras_choice = model.jit_compile
    _step_options(model, train_config_from_args([]))
    assert model.jit_compile == keras_choice


def test_textvae_train_fits_with_xla(store, tmp_path):
    seen: list[bool] = []
    original = RunCheckpoint.on_train_batch_end

    def record(self, batch, logs=None):
        seen.append(self.model.jit_compile)
        return original(self, batch, logs)

    argv = ["--data", store.path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS]
    argv += ["--vocab", "30", "--max-len", "24", "--epochs", "1", "--jit-compile", "on"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunCheckpoint, "on_train_batch_end", record)
        assert train_main(argv) == 0
    assert seen and all(seen)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_an_unknown_jit_compile_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_config_from_args(["--jit-compile", "yes"])
    assert exit_.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "--jit-compile" in err and "invalid choice: 'yes'" in err
