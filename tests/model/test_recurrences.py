"""Tests of the text VAE's recurrences at tiny sizes: the encoder's BiLSTM layers
(``encoder_layers``) and the decoder's cell (``decoder_cell``)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.model.test_model import MAX_LEN, TINY, VOCAB, make_batch
from textvae.model.vae import TextVAE, build_vae, load_model


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.mark.parametrize("decoder", ["autoregressive", "repeat"])
def test_lstm_decoder_trains_and_round_trips(decoder, rng, tmp_path: Path):
    model = build_vae(
        VOCAB, MAX_LEN, decoder=decoder, decoder_cell="lstm", targets="sparse", seed=0, **TINY
    )
    model.run_eagerly = True  # tracing the tiny model takes longer than its one epoch
    ids, labels = make_batch(rng, 8)
    history = model.fit(ids, {"reconstruction": ids, "sentiment": labels}, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    rnns = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.RNN)]
    assert rnns and all(isinstance(layer, keras.layers.LSTM) for layer in rnns)
    if decoder == "autoregressive":
        assert model.decoder_rnn is model.decoder_lstm
        assert len(model.decoder_initial_state(np.zeros((2, TINY["latent"]), "float32"))) == 2
    model.save(tmp_path / "lstm.keras")
    loaded = load_model(tmp_path / "lstm.keras")
    assert loaded.decoder_cell == "lstm" and loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(  # traced against eager: not bit for bit
        loaded.predict(ids, verbose=0)["reconstruction"],
        model.predict(ids, verbose=0)["reconstruction"],
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("layers", "branches"),
    [(1, {}), (0, {}), (0, {"encoder_pooling": False, "bigram_buckets": 64})],
    ids=["one-bilstm", "pooled-only", "bigrams-only"],
)
def test_a_lighter_encoder_trains_and_round_trips(layers, branches, rng, tmp_path: Path):
    model = build_vae(
        VOCAB, MAX_LEN, encoder_layers=layers, targets="sparse", seed=0, **branches, **TINY
    )
    model.run_eagerly = True  # tracing the tiny model takes longer than its one epoch
    bilstms = [
        layer for layer in model.encoder.layers if isinstance(layer, keras.layers.Bidirectional)
    ]
    assert len(bilstms) == layers
    ids, labels = make_batch(rng, 8)
    history = model.fit(ids, {"reconstruction": ids, "sentiment": labels}, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    model.save(tmp_path / "light.keras")
    loaded = load_model(tmp_path / "light.keras")
    assert loaded.encoder_layers == layers and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(
        loaded.encoder.predict(ids, verbose=0)[0], model.encoder.predict(ids, verbose=0)[0]
    )


def test_a_config_without_encoder_layers_has_the_seeds_two():
    config = TextVAE(VOCAB, MAX_LEN, encoder_layers=1, **TINY).get_config()
    del config["encoder_layers"]  # as saved before the option
    model = TextVAE.from_config(config)
    assert model.encoder_layers == 2
    assert [layer.name for layer in model.encoder.layers if "bilstm" in layer.name] == [
        "bilstm_1",
        "bilstm_2",
    ]


def test_a_config_without_decoder_cell_is_a_gru():
    config = TextVAE(VOCAB, MAX_LEN, decoder_cell="lstm", **TINY).get_config()
    del config["decoder_cell"]  # as saved before the option
    model = TextVAE.from_config(config)
    assert model.decoder_cell == "gru" and model.decoder_rnn is model.decoder_gru
    assert isinstance(model.decoder.get_layer("decoder_gru"), keras.layers.GRU)
