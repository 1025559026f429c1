"""Free-running decoding (textvae.model.decoding.generate) against the teacher-forced decoder."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from textvae.data.vocab import OOV_ID, PAD_ID, START_ID
from textvae.model.decoding import generate
from textvae.model.vae import build_vae

VOCAB, MAX_LEN = 40, 10
TINY = {"embedding_dim": 8, "hidden": 16, "dense": 16, "latent": 4}


def _trained(decoder_cell: str):
    """A tiny model of ``decoder_cell`` trained for a few steps."""
    keras.utils.set_random_seed(0)
    m = build_vae(VOCAB, MAX_LEN, targets="sparse", seed=0, decoder_cell=decoder_cell, **TINY)
    m.run_eagerly = True  # tracing the tiny model takes longer than its few steps
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, size=(32, MAX_LEN)).astype(np.int32)
    ids[:, 0] = START_ID
    y = {"reconstruction": ids, "sentiment": np.ones((32, 1), "float32")}
    m.fit(ids, y, batch_size=8, verbose=0)  # 4 steps
    return m


@pytest.fixture(scope="module")
def model():
    return _trained("gru")


@pytest.fixture(scope="module")
def lstm_model():
    """An LSTM decoder: two state tensors (h, c) where a GRU has one."""
    return _trained("lstm")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_greedy_generation_is_what_the_teacher_forced_decoder_predicts(cell, request, rng):
    model = request.getfixturevalue({"gru": "model", "lstm": "lstm_model"}[cell])
    assert model.decoder_cell == cell
    z = rng.standard_normal((5, TINY["latent"])).astype(np.float32)
    out = generate(model, z)
    # A full row's MAX_LEN - 1 ids after the start id, and the step that may end it.
    assert out.shape == (5, MAX_LEN + 1) and (out[:, 0] == START_ID).all()
    assert not np.isin(out[:, 1:], [START_ID, OOV_ID]).any()
    # Read back with teacher forcing (a row of MAX_LEN ids, as in training), each generated id
    # up to the row's end is the decoder's arg-max there (the start id and <oov> excluded, as
    # generation excludes them); a full row's last step, which predicts its end, is scored at
    # its first position (truncating="pre").
    probs = np.asarray(model.decoder([z, out[:, :MAX_LEN]], training=False)).copy()
    probs[..., [START_ID, OOV_ID]] = 0
    full_rows = 0
    for row, ids in zip(probs.argmax(axis=-1), out, strict=True):
        ends = np.flatnonzero(ids == PAD_ID)
        stop = ends[0] + 1 if len(ends) else MAX_LEN + 1
        np.testing.assert_array_equal(row[1 : min(stop, MAX_LEN)], ids[1 : min(stop, MAX_LEN)])
        if ids[MAX_LEN - 1] != PAD_ID:  # a full row: step MAX_LEN ran
            full_rows += 1
            assert row[0] == ids[MAX_LEN]
        assert not ids[stop:].any()  # padded after its end
    assert full_rows  # the tiny model never ends early: the last step is checked


class _Fixed:
    """A stand-in for a ``"repeat"`` model whose decoder gives the same probabilities
    ``(max_len, vocab)`` for every code: generation by hand."""

    decoder_type = "repeat"
    latent = 1

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float32)
        self.max_len, self.vocab_size = self.probs.shape
        self.target_window = self.max_len

    def decoder(self, z, training=False):
        return np.repeat(self.probs[None], len(z), axis=0)


def _fixed(*positions):
    """Probabilities over 8 ids at positions 1, 2, ...: dicts id -> probability."""
    probs = np.zeros((len(positions) + 1, 8), dtype=np.float32)
    probs[0, START_ID] = 1.0
    for row, position in zip(probs[1:], positions, strict=True):
        for i, p in position.items():
            row[i] = p
    return _Fixed(probs)


def test_a_row_stops_at_the_end_and_is_padded_after_it():
    model = _fixed({5: 0.9, 0: 0.1}, {6: 0.8, 7: 0.2}, {0: 0.7, 7: 0.3}, {7: 1.0})
    out = generate(model, np.zeros((2, 1), np.float32))
    np.testing.assert_array_equal(out, [[START_ID, 5, 6, PAD_ID, PAD_ID]] * 2)


def test_oov_is_chosen_only_when_allowed():
    model = _fixed({OOV_ID: 0.6, 5: 0.4})
    z = np.zeros((50, 1), np.float32)
    assert (generate(model, z)[:, 1] == 5).all()
    assert (generate(model, z, temperature=1.0)[:, 1] == 5).all()
    assert (generate(model, z, allow_oov=True)[:, 1] == OOV_ID).all()
    sampled = generate(model, z, temperature=1.0, allow_oov=True)[:, 1]
    assert set(sampled) == {OOV_ID, 5}


@pytest.mark.parametrize(
    ("top_p", "allowed"),
    [(0.45, {3}), (0.55, {3, 4}), (0.75, {3, 4}), (0.85, {3, 4, 5}), (1.0, {3, 4, 5})],
)
def test_top_p_draws_from_the_nucleus(top_p, allowed):
    model = _fixed({3: 0.5, 4: 0.3, 5: 0.2})
    drawn = generate(model, np.zeros((400, 1), np.float32), temperature=1.0, top_p=top_p)[:, 1]
    assert set(drawn) == allowed


def test_temperature_applies_before_the_nucleus():
    # At temperature 0.5 the probabilities become 25 : 9 : 4 (/38): 3 alone holds 0.66.
    model = _fixed({3: 0.5, 4: 0.3, 5: 0.2})
    z = np.zeros((400, 1), np.float32)
    assert set(generate(model, z, temperature=0.5, top_p=0.6)[:, 1]) == {3}
    assert set(generate(model, z, temperature=2.0, top_p=0.6)[:, 1]) == {3, 4}


def test_an_lstm_decoder_samples_and_ends(lstm_model, rng):
    z = rng.standard_normal((20, TINY["latent"])).astype(np.float32)
    out = generate(lstm_model, z, temperature=1.0, top_p=0.9, seed=3)
    assert out.shape == (20, MAX_LEN + 1) and (out[:, 0] == START_ID).all()
    assert ((out[:, 1:] >= 3) | (out[:, 1:] == PAD_ID)).all()
    np.testing.assert_array_equal(out, generate(lstm_model, z, temperature=1.0, top_p=0.9, seed=3))


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
        ({"top_p": 0.0}, r"`top_p` must be a number in \(0, 1\]"),
        ({"top_p": 1.5}, r"`top_p` must be a number in \(0, 1\]"),
    ],
)
def test_bad_arguments_are_refused(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, np.zeros((1, TINY["latent"]), np.float32), **kwargs)


def test_z_of_the_wrong_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"`z` must have shape \(n, 4\)"):
        generate(model, np.zeros((2, 3), np.float32))
