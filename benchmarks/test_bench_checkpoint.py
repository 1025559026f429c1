"""What one mid-epoch checkpoint costs: ``RunDir.save_checkpoint`` of the text VAE with its
optimizer state (the model file, flushed to disk, renamed, then ``state.json``).

``textvae-train --checkpoint-minutes`` (README, "Stopping and resuming") is chosen from these
numbers: a save every M minutes costs ``save seconds / (60 M)`` of the training time. Full size
(``--full``): the quick preset's model (vocab 20,000, max_len 100, hidden 64, latent 32) and the
seed's (vocab 20,000, max_len 300, hidden 500, latent 200: 22.7 M parameters, three times that
with Adam's two moments). Small otherwise. No data is needed: the optimizer's variables are
built without a step.
"""

from __future__ import annotations

import itertools

import pytest

from textvae.model.vae import build_vae
from textvae.training.run import RunDir, TrainingState, checkpoint_name

SIZES = {
    # name: (vocab, max_len, model kwargs)
    "tiny": (2000, 50, {"embedding_dim": 16, "hidden": 16, "dense": 16, "latent": 8}),
    "quick": (20000, 100, {"embedding_dim": 64, "hidden": 64, "dense": 64, "latent": 32}),
    "seed": (20000, 300, {}),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        full = metafunc.config.getoption("--full")
        metafunc.parametrize("size", ["quick", "seed"] if full else ["tiny"])


def test_checkpoint_save_seconds(benchmark, size, tmp_path):
    vocab, max_len, model_kwargs = SIZES[size]
    model = build_vae(vocab, max_len, **model_kwargs)
    model.optimizer.build(model.trainable_variables)
    run = RunDir(tmp_path / "run")
    run.prepare()
    steps = itertools.count(1)
    saved: list[TrainingState] = []

    def save() -> None:
        state = TrainingState(0, batches_done=1, step=next(steps))
        saved.append(run.save_checkpoint(model, state))

    benchmark.group = f"checkpoint save {size}"
    benchmark.pedantic(save, rounds=5, iterations=1, warmup_rounds=1)
    path = run.file(saved[-1].checkpoint)
    params = sum(int(w.numpy().size) for w in model.trainable_weights)
    benchmark.extra_info.update(parameters=params, file_mb=round(path.stat().st_size / 2**20, 1))
    # Only the committed checkpoint is left: older ones are removed after each commit.
    assert [p.name for p in run.path.glob("checkpoint-*")] == [checkpoint_name(saved[-1].step)]
    assert run.training_state() == saved[-1]
