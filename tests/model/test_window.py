"""The encoder reads more than the decoder reconstructs: ``target_window``, hashed bigrams and
encoder dropout (issue 20, item 4), at tiny sizes (vocab 50, max_len 12, window 5)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from textvae.model.config import ModelConfig
from textvae.model.decoding import generate
from textvae.model.layers import BIGRAM_PRIME, HashedBigrams
from textvae.model.vae import build_vae, load_model

VOCAB, MAX_LEN, WINDOW = 50, 12, 5
TINY = {"embedding_dim": 8, "hidden": 16, "dense": 16, "latent": 4}


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _rows(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    """padding="pre" rows, some shorter than the window, some cut (no padding)."""
    ids = rng.integers(3, VOCAB, size=(n, MAX_LEN)).astype(np.int32)
    for row, length in zip(ids, rng.integers(2, MAX_LEN + 1, size=n), strict=True):
        row[: MAX_LEN - length] = 0
        if length < MAX_LEN:
            row[MAX_LEN - length] = 1  # the start id of a review that fits
    return ids


def test_hashed_bigrams_by_hand():
    ids = np.array([[0, 0, 1, 5, 6, 2, 7, 9]], dtype=np.int32)
    got = np.asarray(HashedBigrams(buckets=11, vocab_size=VOCAB)(ids))
    # only (5, 6) and (7, 9) are two words: padding, the start id and <oov> make no bigram
    want = [0, 0, 0, 1 + (5 * BIGRAM_PRIME + 6) % 10, 0, 0, 1 + (7 * BIGRAM_PRIME + 9) % 10]
    np.testing.assert_array_equal(got, [want])
    layer = HashedBigrams(buckets=11, vocab_size=VOCAB)
    assert HashedBigrams.from_config(layer.get_config()).get_config() == layer.get_config()


def test_hashed_bigrams_refuse_what_overflows_or_means_nothing():
    with pytest.raises(ValueError, match="vocab_size"):
        HashedBigrams(buckets=1024, vocab_size=300_000)
    with pytest.raises(ValueError, match="buckets"):
        HashedBigrams(buckets=1, vocab_size=VOCAB)
    with pytest.raises(ValueError, match="bigram_buckets"):
        build_vae(VOCAB, MAX_LEN, bigram_buckets=1, **TINY)
    with pytest.raises(ValueError, match="bigram_buckets"):
        ModelConfig(bigram_buckets=1)
    with pytest.raises(ValueError, match="target_window"):
        build_vae(VOCAB, MAX_LEN, target_window=MAX_LEN + 1, **TINY)


def test_the_decoder_reconstructs_the_window_and_the_lstm_reads_only_it(rng):
    model = build_vae(VOCAB, MAX_LEN, target_window=WINDOW, encoder_pooling=False, **TINY)
    ids = _rows(rng)
    out = model(ids, training=False)
    assert tuple(out["reconstruction"].shape) == (len(ids), WINDOW, VOCAB)
    # ids before the window reach neither the BiLSTM (no pooled branch here) nor the decoder
    other = ids.copy()
    other[:, :-WINDOW] = rng.integers(3, VOCAB, size=(len(ids), MAX_LEN - WINDOW))
    again = model(other, training=False)
    np.testing.assert_allclose(
        np.asarray(again["reconstruction"]), np.asarray(out["reconstruction"]), atol=1e-6
    )


@pytest.mark.parametrize("branch", [{"encoder_pooling": True}, {"bigram_buckets": 64}])
def test_the_pooled_branches_read_the_whole_row(rng, branch):
    settings = {"encoder_pooling": False, **branch}
    model = build_vae(VOCAB, MAX_LEN, target_window=WINDOW, **settings, **TINY)
    ids = _rows(rng)
    ids[:, :-WINDOW] = rng.integers(3, VOCAB, size=(len(ids), MAX_LEN - WINDOW))
    other = ids.copy()
    other[:, :2] = rng.integers(3, VOCAB, size=(len(ids), 2))  # outside the window
    z, z_other = (np.asarray(model.encoder(x, training=False)[0]) for x in (ids, other))
    assert np.abs(z - z_other).max() > 1e-4


@pytest.mark.parametrize("targets", ["sparse", "onehot"])
def test_a_windowed_model_trains_on_window_targets_and_round_trips(tmp_path, rng, targets):
    model = build_vae(
        VOCAB,
        MAX_LEN,
        target_window=WINDOW,
        bigram_buckets=64,
        encoder_dropout=0.2,
        targets=targets,
        **TINY,
    )
    model.run_eagerly = True  # tracing the tiny model takes longer than training it
    ids = _rows(rng, 32)
    window = ids[:, -WINDOW:]
    recon = window if targets == "sparse" else np.eye(VOCAB, dtype=np.float32)[window]
    y = {"reconstruction": recon, "sentiment": rng.integers(0, 2, (32, 1)).astype("float32")}
    before = model.evaluate(ids, y, verbose=0, return_dict=True)["reconstruction_loss"]
    model.fit(ids, y, epochs=3, batch_size=8, verbose=0)
    after = model.evaluate(ids, y, verbose=0, return_dict=True)["reconstruction_loss"]
    assert after < before
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert (loaded.target_window, loaded.bigram_buckets, loaded.encoder_dropout) == (
        WINDOW,
        64,
        0.2,
    )
    np.testing.assert_allclose(
        np.asarray(loaded(ids, training=False)["reconstruction"]),
        np.asarray(model(ids, training=False)["reconstruction"]),
        atol=1e-6,
    )
    generated = generate(loaded, np.zeros((3, TINY["latent"]), "float32"), temperature=0.0)
    assert generated.shape == (3, WINDOW + 1)  # the start id, a window's ids and its end


def test_encoder_dropout_acts_in_training_only(rng):
    model = build_vae(VOCAB, MAX_LEN, encoder_dropout=0.5, epsilon_std=1e-9, **TINY)
    ids = _rows(rng)
    infer = [np.asarray(model.encoder(ids, training=False)[0]) for _ in range(2)]
    np.testing.assert_allclose(infer[0], infer[1])
    trained = np.asarray(model.encoder(ids, training=True)[0])
    assert np.abs(trained - infer[0]).max() > 1e-4
