"""Tests of textvae.model.vae at tiny sizes (vocab 50, max_len 12, hidden 16, latent 4)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from textvae.config import ModelConfig
from textvae.model.metrics import predicted_positions
from textvae.model.vae import (
    ReconstructionLoss,
    Sampling,
    TextVAE,
    bag_of_words_nll,
    build_vae,
    kl_divergence,
    load_model,
)
from textvae.testing import onehot_reference
from textvae.training.callbacks import KLAnnealing

VOCAB, MAX_LEN, BATCH = 50, 12, 16
TINY = {"embedding_dim": 8, "hidden": 16, "dense": 16, "latent": 4}


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def make_batch(rng: np.random.Generator, n: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Ids with some leading padding (like ``padding="pre"``) and 0/1 labels of shape (n, 1)."""
    ids = rng.integers(3, VOCAB, size=(n, MAX_LEN)).astype(np.int32)
    lengths = rng.integers(4, MAX_LEN + 1, size=n)
    for row, length in zip(ids, lengths, strict=True):
        row[: MAX_LEN - length] = 0
    labels = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    return ids, labels


def targets_for(model: TextVAE, ids: np.ndarray, labels: np.ndarray) -> dict:
    recon = ids if model.targets == "sparse" else onehot_reference(ids, VOCAB)
    return {"reconstruction": recon, "sentiment": labels}


class _RecordKLWeight(keras.callbacks.Callback):
    """Records the model's ``kl_weight`` at the start of every training batch."""

    def __init__(self):
        super().__init__()
        self.seen: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(float(self.model.kl_weight.numpy()))


class _Batches(keras.utils.PyDataset):
    """What textvae's Sequence yields: ``(ids, {"reconstruction": uint8 one-hot, "sentiment"})``."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, batch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.ids, self.labels, self.batch_size = ids, labels, batch_size

    def __len__(self):
        return len(self.ids) // self.batch_size

    def __getitem__(self, i):
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        targets = {
            "reconstruction": onehot_reference(self.ids[rows], VOCAB, np.uint8),
            "sentiment": self.labels[rows],
        }
        return self.ids[rows], targets


EPOCHS, WARMUP, SENTIMENT_WEIGHT = 25, 20, 3.0
BOW_WEIGHT = ModelConfig().bow_weight


@pytest.fixture(scope="module")
def trained():
    """One model trained on one fixed batch (one step an epoch) with KL annealing.

    Shared by several tests because tracing a training step of the RNNs costs ~6 s here;
    the tests only read it (predict, evaluate, save), never train it further.
    """
    keras.utils.set_random_seed(0)
    ids, labels = make_batch(np.random.default_rng(0))
    model = build_vae(VOCAB, MAX_LEN, learning_rate=1e-2, sentiment_weight=SENTIMENT_WEIGHT, **TINY)
    y = targets_for(model, ids, labels)
    before = model.evaluate(ids, y, verbose=0, return_dict=True)
    record = _RecordKLWeight()
    history = model.fit(
        ids, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[KLAnnealing(WARMUP), record]
    ).history
    after = model.evaluate(ids, y, verbose=0, return_dict=True)
    return SimpleNamespace(
        model=model,
        ids=ids,
        labels=labels,
        y=y,
        before=before,
        after=after,
        history=history,
        kl_weights=record.seen,
    )


def test_training_lowers_loss_and_reports_kl(trained):
    history = trained.history
    assert set(history) == {
        "loss",
        "reconstruction_loss",
        "sentiment_loss",
        "sentiment_accuracy",
        "kl",
        "bow",  # the bag-of-words loss, on by default
    }
    assert trained.after["loss"] < 0.9 * trained.before["loss"]
    assert history["loss"][-1] < history["loss"][0]
    assert history["kl"][-1] > 0.01
    assert trained.after["kl"] > 0.01


def test_kl_annealing_is_linear_per_batch(trained):
    expected = [min(step / WARMUP, 1.0) for step in range(EPOCHS)]
    np.testing.assert_allclose(trained.kl_weights, expected, atol=1e-6)


def test_kl_term_counts_in_fit(trained):
    # One batch an epoch: every logged value of an epoch comes from the same forward pass.
    for epoch, kl_weight in enumerate(trained.kl_weights):
        logs = {key: values[epoch] for key, values in trained.history.items()}
        expected = (
            logs["reconstruction_loss"]
            + SENTIMENT_WEIGHT * logs["sentiment_loss"]
            + kl_weight * logs["kl"]
            + BOW_WEIGHT * logs["bow"]
        )
        np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5, err_msg=f"epoch {epoch}")


@pytest.mark.parametrize("free_bits", [0.0, 0.5], ids=["no-free-bits", "free-bits"])
def test_kl_term_counts_in_evaluate(trained, free_bits):
    model = build_vae(
        VOCAB,
        MAX_LEN,
        kl_weight=2.0,
        sentiment_weight=SENTIMENT_WEIGHT,
        free_bits=free_bits,
        **TINY,
    )
    model.set_weights(trained.model.get_weights())
    model.kl_weight.assign(2.0)
    logs = model.evaluate(trained.ids, trained.y, verbose=0, return_dict=True)

    # evaluate is deterministic (z = z_mean), so the KL can be recomputed here.
    z_mean, z_log_var, _ = model.encoder.predict(trained.ids, verbose=0)
    per_dim = np.asarray(kl_divergence(z_mean, z_log_var))
    np.testing.assert_allclose(logs["kl"], per_dim.sum(axis=1).mean(), rtol=1e-5)
    penalty = np.maximum(per_dim.mean(axis=0), free_bits).sum()
    expected = (
        logs["reconstruction_loss"]
        + SENTIMENT_WEIGHT * logs["sentiment_loss"]
        + 2.0 * penalty
        + BOW_WEIGHT * logs["bow"]
    )
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_onehot_and_sparse_targets_give_the_same_loss(trained):
    ids, labels = trained.ids, trained.labels
    dense = build_vae(VOCAB, MAX_LEN, targets="onehot", **TINY)
    sparse = build_vae(VOCAB, MAX_LEN, targets="sparse", **TINY)
    dense.set_weights(trained.model.get_weights())
    sparse.set_weights(trained.model.get_weights())

    want = sparse.evaluate(
        ids, {"reconstruction": ids, "sentiment": labels}, verbose=0, return_dict=True
    )
    for dtype in (np.float32, np.float16, np.uint8):
        y = {"reconstruction": onehot_reference(ids, VOCAB, dtype), "sentiment": labels}
        got = dense.evaluate(ids, y, verbose=0, return_dict=True)
        for key in ("loss", "reconstruction_loss", "sentiment_loss", "kl"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=f"{dtype} {key}")
    # The summed reconstruction loss is nats per review over its predicted positions (text
    # after the first id): about log(vocab) each at chance.
    predicted = predicted_positions(ids).sum(axis=1).mean()
    assert 0.3 * predicted * np.log(VOCAB) < want["reconstruction_loss"]
    assert want["reconstruction_loss"] < 2 * predicted * np.log(VOCAB)


def test_submodels_have_the_right_shapes_and_share_weights(trained):
    model, ids = trained.model, trained.ids[:5]
    z_mean, z_log_var, z = model.encoder.predict(ids, verbose=0)
    assert z_mean.shape == z_log_var.shape == z.shape == (5, TINY["latent"])
    np.testing.assert_array_equal(z, z_mean)  # no noise at inference
    recon = model.decoder.predict(model.decoder_inputs(z_mean, ids), verbose=0)
    assert recon.shape == (5, MAX_LEN, VOCAB)
    np.testing.assert_allclose(recon.sum(axis=-1), 1.0, rtol=1e-5)
    sentiment = model.sentiment_predictor.predict(ids, verbose=0)
    assert sentiment.shape == (5, 1)

    outputs = model(ids, training=False)
    assert set(outputs) == {"reconstruction", "sentiment"}
    np.testing.assert_allclose(np.asarray(outputs["reconstruction"]), recon, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(outputs["sentiment"]), sentiment, rtol=1e-5)

    # The same variable objects, not copies, and none of them twice.
    model_ids = {id(w) for w in model.weights}
    assert len(model.weights) == len(model_ids)
    for sub in (model.encoder, model.decoder, model.sentiment_predictor):
        assert sub.weights and {id(w) for w in sub.weights} <= model_ids


def test_save_load_round_trip_and_resume(trained, tmp_path: Path):
    model = trained.model
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    assert isinstance(loaded, TextVAE)
    assert loaded.get_config() == model.get_config()
    assert float(loaded.kl_weight.numpy()) == pytest.approx(1.0)
    expected, got = model.predict(trained.ids, verbose=0), loaded.predict(trained.ids, verbose=0)
    for key in ("reconstruction", "sentiment"):
        np.testing.assert_array_equal(got[key], expected[key])
    # The compile configuration comes back: evaluation gives the same numbers.
    logs = loaded.evaluate(trained.ids, trained.y, verbose=0, return_dict=True)
    assert logs == pytest.approx(trained.after, rel=1e-6)

    # Resuming with a fresh callback continues the schedule from the optimizer's iterations,
    # here fed by a PyDataset shaped like textvae's Sequence (2 batches an epoch).
    assert int(loaded.optimizer.iterations.numpy()) == EPOCHS
    loaded.run_eagerly = True  # the graph was traced in `trained`: save its tracing time here
    record = _RecordKLWeight()
    batches = _Batches(trained.ids, trained.labels, batch_size=8)
    history = loaded.fit(
        batches, epochs=2, verbose=0, callbacks=[KLAnnealing(2 * EPOCHS), record]
    ).history
    steps = np.arange(EPOCHS, EPOCHS + 4)
    np.testing.assert_allclose(record.seen, steps / (2 * EPOCHS), atol=1e-6)
    assert np.all(np.isfinite(history["loss"])) and history["kl"][-1] > 0


def test_get_config_from_config_round_trips():
    model = TextVAE(
        VOCAB,
        MAX_LEN,
        epsilon_std=0.01,
        sentiment_weight=200.0,
        kl_weight=0.5,
        free_bits=0.25,
        targets="sparse",
        seed=7,
        **TINY,
    )
    config = model.get_config()
    assert config["vocab_size"] == VOCAB and config["max_len"] == MAX_LEN
    assert config["kl_weight"] == 0.5 and config["targets"] == "sparse"
    clone = TextVAE.from_config(config)
    assert clone.get_config() == config
    assert float(clone.kl_weight.numpy()) == 0.5

    sampling = Sampling(epsilon_std=0.01, seed=1, name="s")
    assert Sampling.from_config(sampling.get_config()).get_config() == sampling.get_config()
    loss = ReconstructionLoss(sparse=True)
    assert ReconstructionLoss.from_config(loss.get_config()).get_config() == loss.get_config()


def test_kl_annealing_schedule_values():
    schedule = KLAnnealing(4, start=0.2, end=1.0)
    assert [schedule.value(s) for s in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert KLAnnealing(0, end=0.5).value(0) == 0.5
    with pytest.raises(ValueError, match="warmup_steps"):
        KLAnnealing(-1)
    with pytest.raises(ValueError, match="warmup_steps"):
        KLAnnealing(2.5)


def test_sampling_draws_with_the_given_std_only_when_training():
    layer = Sampling(epsilon_std=0.5, seed=0)
    z_mean = np.full((20000, 2), 3.0, dtype=np.float32)
    z_log_var = np.log(np.full((20000, 2), 4.0, dtype=np.float32))  # std 2
    np.testing.assert_array_equal(np.asarray(layer([z_mean, z_log_var], training=False)), z_mean)
    z = np.asarray(layer([z_mean, z_log_var], training=True))
    assert z.mean() == pytest.approx(3.0, abs=0.03)
    assert z.std() == pytest.approx(2.0 * 0.5, rel=0.03)


def test_kl_divergence_matches_the_closed_form():
    z_mean = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    z_log_var = np.array([[0.0, 0.0], [np.log(2.0), -1.0]], dtype=np.float32)
    expected = 0.5 * (np.exp(z_log_var) + z_mean**2 - 1.0 - z_log_var)
    np.testing.assert_allclose(np.asarray(kl_divergence(z_mean, z_log_var)), expected, rtol=1e-6)
    assert np.asarray(kl_divergence(np.zeros((1, 3)), np.zeros((1, 3)))).sum() == 0.0


def test_default_sentiment_weight_is_the_configs():
    assert TextVAE(VOCAB, MAX_LEN, **TINY).sentiment_weight == ModelConfig().sentiment_weight


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"max_len": -1}, "max_len"),
        ({"hidden": 1.5}, "hidden"),
        ({"targets": "dense"}, "targets"),
        ({"epsilon_std": 0.0}, "epsilon_std"),
        ({"free_bits": -1.0}, "free_bits"),
        ({"kl_weight": -0.1}, "kl_weight"),
        ({"decoder": "lstm"}, "decoder"),
        ({"decoder_cell": "rnn"}, "decoder_cell"),
        ({"word_dropout": 1.0}, "word_dropout"),
        ({"bow_weight": -1.0}, "bow_weight"),
        ({"encoder_layers": 3}, "encoder_layers"),
        ({"encoder_layers": 0, "encoder_pooling": False}, "encoder_layers=0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"vocab_size": VOCAB, "max_len": MAX_LEN, **TINY, **kwargs}
    with pytest.raises(ValueError, match=name):
        TextVAE(**args)


def test_mixed_float16_keeps_outputs_and_loss_in_float32(rng):
    ids, labels = make_batch(rng, 4)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_vae(VOCAB, MAX_LEN, kl_weight=1.0, **TINY)
        outputs = model(ids, training=False)
        assert keras.backend.standardize_dtype(outputs["reconstruction"].dtype) == "float32"
        assert keras.backend.standardize_dtype(outputs["sentiment"].dtype) == "float32"
        logs = model.evaluate(
            ids,
            {"reconstruction": onehot_reference(ids, VOCAB, np.float16), "sentiment": labels},
            verbose=0,
            return_dict=True,
        )
        assert all(np.isfinite(v) for v in logs.values())
    finally:
        keras.config.set_dtype_policy(previous)


def _end_positions(ids: np.ndarray, truncating: str = "post") -> np.ndarray:
    """The padding position next to each row's text; in a row without padding, its first
    position with truncating="pre" (the review's end kept), none with "post"."""
    end = np.zeros(ids.shape, dtype=bool)
    for b, row in enumerate(ids):
        text = np.flatnonzero(row)
        if text[-1] + 1 < len(row):  # padding="post"
            end[b, text[-1] + 1] = True
        elif text[0] > 0:  # padding="pre"
            end[b, text[0] - 1] = True
        elif truncating == "pre":
            end[b, 0] = True
    return end


def test_scored_positions_by_hand():
    from textvae.model.losses import scored_positions

    ids = np.array(
        [
            [0, 0, 1, 5, 6],  # pre: the end before the start id
            [1, 5, 6, 0, 0],  # post: the end right after the text
            [7, 5, 6, 8, 9],  # cut at max_len: no end position
            [0, 0, 0, 0, 1],  # an empty review: the end before its start id
        ]
    )
    got = np.asarray(scored_positions(ids != 0, truncating="post"))
    want = [[0, 1, 0, 1, 1], [0, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]]
    np.testing.assert_array_equal(got, np.array(want, dtype=bool))
    # truncating="pre" (the default): the cut row ends too, at its first position
    want[2][0] = 1
    np.testing.assert_array_equal(np.asarray(scored_positions(ids != 0)), np.array(want, bool))


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_reconstruction_loss_counts_predicted_positions_and_the_end_only(rng, padding, truncating):
    ids, _ = make_batch(rng, 4)
    ids[0] = rng.integers(3, VOCAB, size=MAX_LEN)  # a review cut at max_len
    if padding == "post":
        ids = np.stack([np.concatenate([r[r != 0], r[r == 0]]) for r in ids])
    probs = rng.random((4, MAX_LEN, VOCAB)).astype(np.float32)
    probs /= probs.sum(axis=-1, keepdims=True)
    ends = _end_positions(ids, truncating)
    keep = predicted_positions(ids) | ends
    assert ends.sum() == (4 if truncating == "pre" else 3) and ends[0, 0] == (truncating == "pre")
    targets = np.where(ends, 0, ids)  # the end's target is the pad id
    p_true = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]
    want = -(np.log(p_true) * keep).sum(axis=1).mean()
    for sparse, y in (
        (True, ids),
        (False, onehot_reference(ids, VOCAB)),
        (False, onehot_reference(ids, VOCAB, np.uint8)),
    ):
        loss = ReconstructionLoss(sparse=sparse, truncating=truncating)
        np.testing.assert_allclose(float(loss(y, probs)), want, rtol=1e-5)
    # Whatever the model predicts at padding and first-id positions does not count.
    noisy = probs.copy()
    noisy[~keep] = rng.random((int((~keep).sum()), VOCAB))
    loss = ReconstructionLoss(sparse=True, truncating=truncating)
    np.testing.assert_allclose(float(loss(ids, noisy)), want, rtol=1e-5)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_autoregressive_decoder_reads_only_earlier_ids(rng, padding):
    model = TextVAE(VOCAB, MAX_LEN, seed=0, **TINY)
    ids, _ = make_batch(rng, 3)
    if padding == "post":
        ids = np.stack([np.concatenate([r[r != 0], r[r == 0]]) for r in ids])
    z = rng.standard_normal((3, TINY["latent"])).astype(np.float32)
    base = np.asarray(model.decoder([z, ids], training=False))
    for row in range(3):
        text = np.flatnonzero(ids[row])
        k = text[len(text) // 2]  # change one id in the middle of the text
        changed = ids.copy()
        changed[row, k] = 3 + (ids[row, k] - 2) % (VOCAB - 3)
        out = np.asarray(model.decoder([z, changed], training=False))
        # Predictions up to position k read ids before k only: unchanged; after k they differ.
        # With padding="pre" the end sits before the text and reads all of it (losses.py).
        before = np.arange(k + 1) != (text[0] - 1 if padding == "pre" else -1)
        np.testing.assert_allclose(
            out[row, : k + 1][before], base[row, : k + 1][before], rtol=1e-5, atol=1e-7
        )
        if padding == "pre" and text[0] > 0:
            assert not np.allclose(out[row, text[0] - 1], base[row, text[0] - 1])
        assert not np.allclose(out[row, k + 1 :], base[row, k + 1 :]) or k + 1 >= text[-1] + 1


def test_autoregressive_decoder_uses_z(rng):
    model = TextVAE(VOCAB, MAX_LEN, seed=0, **TINY)
    ids, _ = make_batch(rng, 2)
    z = rng.standard_normal((2, TINY["latent"])).astype(np.float32)
    a = np.asarray(model.decoder([z, ids], training=False))
    b = np.asarray(model.decoder([z + 1.0, ids], training=False))
    keep = predicted_positions(ids)
    assert not np.allclose(a[keep], b[keep])


def test_repeat_decoder_is_the_seeds_and_round_trips(rng, tmp_path: Path):
    model = build_vae(VOCAB, MAX_LEN, decoder="repeat", targets="sparse", **TINY)
    model.run_eagerly = True  # tracing the tiny model takes longer than its one epoch
    ids, labels = make_batch(rng, 8)
    model.fit(ids, {"reconstruction": ids, "sentiment": labels}, epochs=1, verbose=0)
    assert [layer.name for layer in model.decoder.layers][1:] == [
        "repeat",
        "gru_1",
        "gru_2",
        "reconstruction",
    ]
    model.save(tmp_path / "repeat.keras")
    loaded = load_model(tmp_path / "repeat.keras")
    assert loaded.decoder_type == "repeat" and loaded.get_config() == model.get_config()


def test_checkpoint_of_textvae_0_1_still_loads():
    data = Path(__file__).parents[1] / "fixtures"
    model = load_model(data / "textvae-0.1.0-repeat.keras")
    expected = np.load(data / "textvae-0.1.0-repeat-expected.npz")
    assert model.decoder_type == "repeat" and not model.encoder_pooling
    z_mean = model.encoder(expected["ids"], training=False)[0]
    probs = np.asarray(model.decoder(z_mean, training=False))
    np.testing.assert_allclose(probs, expected["probs"], rtol=1e-5, atol=1e-7)


def test_load_model_refuses_missing_and_foreign_files(tmp_path: Path):
    from textvae.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "none.keras")
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(CheckpointError, match="not a textvae model"):
        load_model(tmp_path / "other.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_model(tmp_path / "broken.keras")


def test_load_model_works_in_a_fresh_process(tmp_path: Path):
    import subprocess
    import sys

    path = Path(__file__).parents[1] / "fixtures" / "textvae-0.1.0-repeat.keras"
    code = (
        "import textvae, sys; m = textvae.load_model(sys.argv[1]); "
        "print(type(m).__name__, m.vocab_size, m.decoder_type)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["TextVAE", "20", "repeat"]


def test_output_bias_starts_at_the_unigram_distribution():
    model = TextVAE(VOCAB, MAX_LEN, seed=0, **TINY)
    counts = np.arange(VOCAB, dtype=np.int64)
    model.init_output_bias(counts)
    bias = np.asarray(model.decoder.get_layer("reconstruction").bias)
    want = counts.astype(np.float64)
    want[1] = 0  # the start id is never a target; the pad id's count is the reviews that end
    want = np.log((want + 1) / (want + 1).sum())
    np.testing.assert_allclose(bias, want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"`counts` must have shape \(50,\)"):
        model.init_output_bias(counts[:-1])


def test_bag_of_words_nll_counts_each_word_of_the_review(rng):
    ids, _ = make_batch(rng, n=4)
    ids[:, -MAX_LEN + 2] = 1  # a start id inside the text is not a word either
    logits = rng.normal(size=(4, VOCAB)).astype(np.float32)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = [-sum(logp[r, i] for i in row if i > 1) for r, row in enumerate(ids)]
    np.testing.assert_allclose(np.asarray(bag_of_words_nll(logits, ids)), expected, rtol=1e-5)


def test_bag_of_words_loss_counts_in_evaluate_and_round_trips(trained, tmp_path: Path):
    model = build_vae(
        VOCAB, MAX_LEN, sentiment_weight=SENTIMENT_WEIGHT, bow_weight=0.5, kl_weight=1.0, **TINY
    )
    model.run_eagerly = True  # tracing the tiny model takes longer than its two epochs
    model.fit(trained.ids, trained.y, epochs=2, batch_size=8, verbose=0)
    logs = model.evaluate(trained.ids, trained.y, verbose=0, return_dict=True)
    z_mean, z_log_var, _ = model.encoder.predict(trained.ids, verbose=0)
    bow = np.asarray(bag_of_words_nll(model.bow_head(z_mean), trained.ids))
    np.testing.assert_allclose(logs["bow"], bow.mean(), rtol=1e-5)
    kl = np.asarray(kl_divergence(z_mean, z_log_var)).sum(axis=1).mean()
    expected = (
        logs["reconstruction_loss"]
        + SENTIMENT_WEIGHT * logs["sentiment_loss"]
        + kl
        + 0.5 * bow.mean()
    )
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)

    path = tmp_path / "bow.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_config()["bow_weight"] == 0.5
    loaded.run_eagerly = True  # as `model`: a traced graph may round differently (1e-6)
    assert loaded.evaluate(trained.ids, trained.y, verbose=0, return_dict=True) == pytest.approx(
        logs, rel=1e-6
    )
    # Off by default: no layer, so checkpoints without it keep their weights.
    assert build_vae(VOCAB, MAX_LEN, bow_weight=0.0, **TINY).bow_head is None
