"""Free-running decoding (textvae.model.decoding.generate) against the teacher-forced decoder."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from textvae.data.vocab import PAD_ID, START_ID
from textvae.model.decoding import generate
from textvae.model.vae import build_vae

VOCAB, MAX_LEN = 40, 10
TINY = {"embedding_dim": 8, "hidden": 16, "dense": 16, "latent": 4}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = build_vae(VOCAB, MAX_LEN, targets="sparse", seed=0, **TINY)
    m.run_eagerly = True  # tracing the tiny model takes longer than its one epoch
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, size=(32, MAX_LEN)).astype(np.int32)
    ids[:, 0] = START_ID
    m.fit(ids, {"reconstruction": ids, "sentiment": np.ones((32, 1), "float32")}, verbose=0)
    return m


def test_greedy_generation_is_what_the_teacher_forced_decoder_predicts(model, rng):
    z = rng.standard_normal((5, TINY["latent"])).astype(np.float32)
    out = generate(model, z)
    assert out.shape == (5, MAX_LEN) and (out[:, 0] == START_ID).all()
    assert not np.isin(out[:, 1:], [PAD_ID, START_ID]).any()
    # Read back with teacher forcing, each generated id is the decoder's arg-max there
    # (padding and the start id excluded, as generation excludes them).
    probs = np.asarray(model.decoder([z, out], training=False)).copy()
    probs[..., [PAD_ID, START_ID]] = 0
    np.testing.assert_array_equal(probs.argmax(axis=-1)[:, 1:], out[:, 1:])


def test_sampling_is_seeded_and_respects_top_k(model, rng):
    z = rng.standard_normal((64, TINY["latent"])).astype(np.float32)
    a = generate(model, z, steps=6, temperature=1.0, top_k=3, seed=1)
    b = generate(model, z, steps=6, temperature=1.0, top_k=3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, generate(model, z, steps=6, temperature=1.0, seed=2))
    # With top_k=1 sampling is greedy.
    np.testing.assert_array_equal(
        generate(model, z, steps=6, temperature=1.0, top_k=1, seed=3), generate(model, z, steps=6)
    )


def test_batches_give_the_same_result(model, rng):
    z = rng.standard_normal((7, TINY["latent"])).astype(np.float32)
    np.testing.assert_array_equal(generate(model, z, batch_size=3), generate(model, z))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "`steps` must be a positive integer"),
        ({"temperature": -1.0}, "`temperature` must be a non-negative number"),
        ({"top_k": 0}, "`top_k` must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, np.zeros((1, TINY["latent"]), np.float32), **kwargs)


def test_z_of_the_wrong_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"`z` must have shape \(n, 4\)"):
        generate(model, np.zeros((2, 3), np.float32))
