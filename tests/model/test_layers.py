"""The decoder's layers: text moved to the front, word dropout, features back to the store."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from textvae.data.vocab import OOV_ID, START_ID
from textvae.model.layers import AlignToStore, DecoderInputs, MaskedMean, StepPositions


def rows(rng: np.random.Generator, n: int, max_len: int, padding: str) -> np.ndarray:
    ids = np.zeros((n, max_len), dtype=np.int32)
    for row in ids:
        length = int(rng.integers(1, max_len + 1))
        text = [START_ID, *rng.integers(3, 40, size=length - 1)]
        if padding == "pre":
            row[max_len - length :] = text
        else:
            row[:length] = text
    return ids


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_decoder_inputs_move_text_to_the_front(rng, padding):
    ids = rows(rng, 20, 9, padding)
    text, offsets = DecoderInputs(word_dropout=0.0)(ids)
    text, offsets = np.asarray(text), np.asarray(offsets)
    for row, got, offset in zip(ids, text, offsets, strict=True):
        words = row[row != 0]
        assert offset == np.flatnonzero(row)[0]
        np.testing.assert_array_equal(got[: len(words)], words)
        assert not got[len(words) :].any()


def test_decoder_inputs_read_a_cut_row_from_the_start_id():
    """A row cut at max_len (or a window) begins mid-review: the decoder reads it from <start>
    like every other row (its first id is given, never predicted); the rest is unchanged."""
    ids = np.array([[7, 5, 6, 8, 9], [0, 0, 1, 5, 6], [0, 0, 0, 0, 0]], dtype=np.int32)
    text, offsets = DecoderInputs(word_dropout=0.0)(ids)
    np.testing.assert_array_equal(
        np.asarray(text), [[START_ID, 5, 6, 8, 9], [START_ID, 5, 6, 0, 0], [0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(np.asarray(offsets), [0, 2, 0])


def test_step_positions_count_the_steps_of_the_row():
    x = np.zeros((3, 4, 7), dtype=np.float32)
    got = np.asarray(StepPositions()(x))
    assert got.shape == (3, 4, 1)
    np.testing.assert_allclose(got[:, :, 0], [[0, 0.25, 0.5, 0.75]] * 3)


def test_word_dropout_replaces_words_only_in_training(rng):
    ids = rows(rng, 200, 30, "pre")
    layer = DecoderInputs(word_dropout=0.25, seed=1)
    clean = np.asarray(layer(ids, training=False)[0])
    dropped = np.asarray(layer(ids, training=True)[0])
    changed = clean != dropped
    assert (dropped[changed] == OOV_ID).all()
    words = clean >= 3
    assert not changed[~words].any()  # padding and the start id are never dropped
    assert 0.2 < changed.sum() / words.sum() < 0.3
    config = layer.get_config()
    assert DecoderInputs.from_config(config).get_config() == config


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_align_to_store_puts_step_s_at_offset_plus_s_plus_one(rng, padding):
    ids = rows(rng, 10, 7, padding)
    _, offsets = DecoderInputs(0.0)(ids)
    offsets = np.asarray(offsets)
    features = rng.standard_normal((10, 7, 3)).astype(np.float32)
    out = np.asarray(AlignToStore()([features, offsets]))
    for b in range(10):
        length = int(np.count_nonzero(ids[b]))  # text ids, the start id included
        for j in range(7):
            step = j - offsets[b] - 1
            if padding == "pre" and j == offsets[b] - 1:
                step = length - 1  # the end position: after the text's last id
            want = features[b, step] if step >= 0 else np.zeros(3)
            np.testing.assert_allclose(out[b, j], want)


def test_align_to_store_puts_the_end_next_to_the_text_by_hand():
    """Text [1, 5, 6] in rows of 5: the step that read 6 (step 2) predicts the end."""
    features = np.arange(5, dtype=np.float32)[None, :, None].repeat(2, axis=0)
    offsets = np.array([2, 0], dtype=np.int32)  # [0, 0, 1, 5, 6] and [1, 5, 6, 0, 0]
    out = np.asarray(AlignToStore()([features, offsets]))[..., 0]
    # pre: position 1 is the end (step 2), 3 and 4 the words (steps 0, 1); 0 and 2 unscored
    np.testing.assert_array_equal(out[0], [0, 2, 0, 0, 1])
    # post: positions 1, 2 the words, 3 the end (step 2); 4 is padding the loss leaves out
    np.testing.assert_array_equal(out[1], [0, 0, 1, 2, 3])


@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_align_to_store_puts_a_full_rows_end_at_its_first_position(truncating):
    """A row without padding: with truncating="pre" its review ends at the row's end, and the
    step that read its last id goes to position 0 (given, never scored otherwise)."""
    features = np.arange(5, dtype=np.float32)[None, :, None].repeat(3, axis=0)
    ids = np.array([[7, 5, 6, 8, 9], [0, 0, 1, 5, 6], [1, 5, 6, 0, 0]], dtype=np.int32)
    text, offsets = DecoderInputs(0.0)(ids)
    out = np.asarray(AlignToStore(truncating)([features, offsets, text]))[..., 0]
    end = 4 if truncating == "pre" else 0  # step 4 read the last id, 9
    np.testing.assert_array_equal(out[0], [end, 0, 1, 2, 3])
    # rows with padding: as without `text`
    np.testing.assert_array_equal(out[1], [0, 2, 0, 0, 1])
    np.testing.assert_array_equal(out[2], [0, 0, 1, 2, 3])
    layer = AlignToStore(truncating)
    assert AlignToStore.from_config(layer.get_config()).truncating == truncating


def test_align_to_store_refuses_an_unknown_truncating():
    with pytest.raises(ValueError, match="truncating"):
        AlignToStore("middle")


def test_masked_mean_ignores_padding(rng):
    ids = rows(rng, 6, 8, "pre")
    embedded = rng.standard_normal((6, 8, 4)).astype(np.float32)
    got = np.asarray(MaskedMean()([embedded, ids]))
    for b in range(6):
        np.testing.assert_allclose(got[b], embedded[b][ids[b] != 0].mean(axis=0), rtol=1e-5)


def test_layers_round_trip_in_a_functional_model(tmp_path, rng):
    ids_in = keras.Input((7,), dtype="int32")
    text, offsets = DecoderInputs(0.1, seed=0)(ids_in)
    emb = keras.layers.Embedding(40, 3)(text)
    out = AlignToStore()([emb, offsets])
    model = keras.Model(ids_in, out)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    ids = rows(rng, 4, 7, "pre")
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)))
