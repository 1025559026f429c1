"""textvae-train and textvae-sample end to end on a small store, and every bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from textvae.cli import EXIT_USER_ERROR, sample_main, train_config_from_args, train_main
from textvae.config import QUICK, TrainConfig
from textvae.data import StoreSpec
from textvae.data.store import TokenStore
from textvae.testing import TINY_TRAIN_ARGS

TINY = list(TINY_TRAIN_ARGS)


def _train(store_path: str, out: Path, *extra: str) -> int:
    return train_main(["--data", store_path, "--out", str(out), *TINY, *extra])


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One 1-epoch run on a small store, shared by the tests that only read its artefacts."""
    import numpy as np

    from textvae.data import build_store
    from textvae.data.discover import open_corpus
    from textvae.testing import random_reviews, write_jsonl

    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(1)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 40))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12))
    store = build_store(
        root / "s.zarr",
        open_corpus(root / "c"),
        spec=StoreSpec(vocab_size=12, max_len=16, chunk_rows=8),
    )
    out = root / "out"
    assert _train(store.path, out, "--epochs", "1", "--targets", "onehot") == 0
    return store, out


def test_run_writes_every_artefact(finished_run):
    store, out = finished_run
    assert sorted(p.name for p in out.iterdir()) == [  # no mid-epoch checkpoint is left
        "best.keras",
        "config.json",
        "history.csv",
        "last.keras",
        "latents.png",
        "metrics.json",
        "state.json",
        "vocab.json",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reviews"] == 12 and metrics["split"] == "test"
    assert metrics["kl"] > 0
    assert 0 <= metrics["token_accuracy"] <= 1 and 0 <= metrics["sentiment_accuracy"] <= 1
    assert 0 <= metrics["active_units"] <= metrics["latent"] == 4
    assert metrics["reconstruction_ce_per_token"] > 0
    assert metrics["val_rows"] == 2  # 5% of 40 training reviews, held out
    assert metrics["perplexity"] > 1 and metrics["ce_per_token_z0"] > 0
    assert metrics["reconstruct_reviews"] == 12
    for key in ("reconstruct_unigram_f1", "reconstruct_bleu4", "reconstruct_sentiment_kept"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["prior_samples"] == 500  # the generation scores (issue 20, item 3)
    for prefix in ("prior", "reconstruct"):
        assert 0 <= metrics[f"{prefix}_ended"] <= 1, prefix
        for score in ("rep4", "distinct2", "oov_share"):  # None: no text long enough
            value = metrics[f"{prefix}_{score}"]
            assert value is None or 0 <= value <= 1, (prefix, score)
        assert 0 <= metrics[f"{prefix}_mean_length"] <= 16, prefix  # max_len ids at most
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0"] and float(rows[0]["kl"]) > 0
    assert float(rows[0]["val_loss"]) > 0  # best.keras is chosen on it
    assert json.loads((out / "vocab.json").read_text()) == list(store.vocab)
    assert (out / "latents.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_at_next_epoch(finished_run, tmp_path):
    store, out = finished_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("config.json", "vocab.json", "last.keras", "state.json", "history.csv"):
        (resumed / name).write_bytes((out / name).read_bytes())
    assert _train(store.path, resumed, "--epochs", "2", "--resume") == 0
    rows = list(csv.DictReader((resumed / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    state = json.loads((resumed / "state.json").read_text())
    assert state["epochs_done"] == 2 and state["step"] == 2 * state["steps_per_epoch"]


def test_sample_commands_print_words(finished_run, capsys):
    _, out = finished_run
    vocab = set(json.loads((out / "vocab.json").read_text()))
    assert sample_main(["reconstruct", str(out), "a good film !"]) == 0
    printed = capsys.readouterr().out
    assert "input:  a good film !" in printed
    words = printed.split("output:")[1].split()
    assert words and set(words) <= vocab
    assert sample_main(["prior", str(out), "--n", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert sample_main(["interpolate", str(out), "good", "bad", "--steps", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["0.00", "0.33", "0.67", "1.00"]


def test_sample_decoding_flags(finished_run, capsys):
    _, out = finished_run
    args = ["prior", str(out), "--n", "4", "--temperature", "1.0", "--top-k", "3"]
    assert sample_main(args) == 0
    first = capsys.readouterr().out
    assert sample_main(args) == 0
    assert capsys.readouterr().out == first  # seeded
    assert len(first.strip().splitlines()) == 4


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["interpolate", "RUN", "good", "bad", "--steps", "-1"], "steps"),
        (["interpolate", "RUN", "good", "bad", "--steps", "1"], "steps"),
        (["prior", "RUN", "--n", "0"], "`n`"),
        (["prior", "RUN", "--temperature", "-1"], "temperature"),
        (["reconstruct", "RUN", "a film", "--top-k", "0"], "top_k"),
    ],
)
def test_bad_sample_arguments_exit_with_usage(argv, name, capsys):
    with pytest.raises(SystemExit) as exc:
        sample_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_decoder_flags():
    config = train_config_from_args(["--decoder", "repeat", "--no-encoder-pooling"])
    assert config.model.decoder == "repeat" and config.model.encoder_pooling is False
    config = train_config_from_args(["--word-dropout", "0.5", "--val-fraction", "0.1"])
    assert config.model.word_dropout == 0.5 and config.val_fraction == 0.1
    assert train_config_from_args([]).model.decoder == "autoregressive"


def test_checkpoint_flags():
    config = train_config_from_args(["--checkpoint-steps", "50", "--checkpoint-minutes", "0"])
    assert (config.checkpoint_steps, config.checkpoint_minutes) == (50, 0.0)
    default = train_config_from_args([])
    assert default.checkpoint_steps == 0 and default.checkpoint_minutes > 0


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--checkpoint-steps", "-1"], "checkpoint_steps"),
        (["--checkpoint-minutes", "-2"], "checkpoint_minutes"),
    ],
)
def test_bad_checkpoint_flags_exit_with_usage(argv, name, capsys):
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(argv)
    assert exc.value.code == 2 and f"`{name}` must be" in capsys.readouterr().err


def test_existing_run_not_overwritten(finished_run, capsys):
    store, out = finished_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _train(store.path, out) == EXIT_USER_ERROR
    assert "--resume" in _one_error_line(capsys)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_damaged_state_json_on_resume_is_one_error_line(finished_run, tmp_path, capsys):
    store, out = finished_run
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "vocab.json", "last.keras"):
        (damaged / name).write_bytes((out / name).read_bytes())
    (damaged / "state.json").write_text('{"epochs_done": 1')  # cut short by a crash
    assert _train(store.path, damaged, "--resume", "--epochs", "2") == EXIT_USER_ERROR
    line = _one_error_line(capsys)
    assert "state.json is damaged" in line and "--overwrite" in line


def test_sample_names_a_missing_run_in_one_line(tmp_path, capsys):
    assert sample_main(["prior", str(tmp_path / "nothing")]) == EXIT_USER_ERROR
    assert "point at the --out folder" in _one_error_line(capsys)


def test_single_process_training_never_imports_the_distributed_module(small_store, tmp_path):
    """textvae.training.distributed imports TensorFlow: one process must train without it (a GPU
    machine runs KERAS_BACKEND=jax with no TensorFlow). Here the module is made unimportable."""
    import subprocess
    import sys

    argv = ["--data", small_store.path, "--out", str(tmp_path / "o"), *TINY, "--run-eagerly"]
    code = f"""
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "textvae.training.distributed":
            raise ImportError("textvae.training.distributed is not importable in this test")

sys.meta_path.insert(0, Refuse())
from textvae.cli import train_main
from textvae.data import StoreSpec
code = train_main({argv!r})
assert "textvae.training.distributed" not in sys.modules
sys.exit(code)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "o" / "metrics.json").is_file()


def test_checkpoint_of_another_shape_refused(finished_run, capsys):
    store, out = finished_run
    before = (out / "last.keras").read_bytes()
    assert _train(store.path, out, "--resume", "--epochs", "2", "--hidden", "16") == EXIT_USER_ERROR
    assert "hidden=8" in _one_error_line(capsys)
    assert (out / "last.keras").read_bytes() == before


def test_resume_without_checkpoint(small_store, tmp_path, capsys):
    assert _train(small_store.path, tmp_path / "new", "--resume") == EXIT_USER_ERROR
    assert "no checkpoint" in _one_error_line(capsys)


def test_store_with_other_vocab(small_store, tmp_path, capsys):
    code = train_main(
        [
            "--data",
            small_store.path,
            "--out",
            str(tmp_path / "o"),
            "--vocab",
            "20000",
            "--max-len",
            "16",
            "--verbose",
            "0",
        ]
    )
    assert code == EXIT_USER_ERROR
    assert "vocab_size=12" in _one_error_line(capsys)


def test_incomplete_store(small_store, tmp_path, capsys):
    group = zarr.open_group(small_store.path, mode="r+")
    group.attrs["textvae"] = {**group.attrs["textvae"], "complete": False}
    assert _train(small_store.path, tmp_path / "o") == EXIT_USER_ERROR
    assert "incomplete" in _one_error_line(capsys)


def test_unwritable_out(small_store, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert _train(small_store.path, blocker / "out") == EXIT_USER_ERROR
    assert "cannot write to --out" in _one_error_line(capsys)
    assert blocker.read_text() == "not a folder"


def test_ingests_a_corpus_once_then_reuses_the_store(corpus_dir, tmp_path, capsys):
    store = tmp_path / "ingested.zarr"
    args = [
        "--data",
        str(corpus_dir),
        "--store",
        str(store),
        *TINY,
        "--run-eagerly",  # tracing the tiny model's graph takes longer than its two runs
        "--epochs",
        "1",
        "--targets",
        "sparse",
        "--train-rows",
        "16",
        "--eval-rows",
        "8",
    ]
    assert train_main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "ingesting" in capsys.readouterr().out
    stamp = (store / "zarr.json").stat().st_mtime_ns
    assert train_main([*args, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "using the store" in out
    assert (store / "zarr.json").stat().st_mtime_ns == stamp
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["reviews"] == 8 and metrics["train_rows"] == 16 and metrics["processes"] == 1
    # The token metrics read 8 test reviews; sentiment also covers the whole test split.
    test_rows = TokenStore.open(store).num_rows("test")
    assert 8 < test_rows == metrics["split_sentiment_reviews"]
    assert 0 <= metrics["split_sentiment_accuracy"] <= 1
    assert f"on all {test_rows:,}" in out
    # The old names, written for one more release (README, "Deprecated names").
    assert metrics["train_rows_per_epoch"] == 16 and metrics["workers"] == 1


def test_offline_without_local_imdb(monkeypatch, tmp_path, capsys):
    """No --data, no local copy, no network: one line saying how to point at a copy."""
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.delenv("TEXTVAE_IMDB", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(keras.utils, "get_file", offline)
    assert train_main(["--out", str(tmp_path / "o"), *TINY]) == EXIT_USER_ERROR
    line = _one_error_line(capsys)
    assert "TEXTVAE_IMDB" in line and "--data" in line


def test_quick_preset_and_overrides():
    config = train_config_from_args(["--quick", "--vocab", "20000", "--hidden", "32"])
    assert config.vocab_size == 20000
    assert config.model.hidden == 32  # an explicit flag beats the preset
    assert config.max_len == QUICK["max_len"] and config.model.latent == QUICK["latent"]
    assert train_config_from_args([]) == TrainConfig()
    assert not TrainConfig().run_eagerly
    assert train_config_from_args(["--run-eagerly"]).run_eagerly


def test_bad_flag_values_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(["--batch-size", "0"])
    assert exc.value.code == 2
    assert "batch_size" in capsys.readouterr().err


def test_missing_data_path(tmp_path, capsys):
    assert (
        train_main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *TINY])
        == EXIT_USER_ERROR
    )
    assert "does not exist" in _one_error_line(capsys)


def test_store_the_vae_cannot_train_on_is_one_error_line(tmp_path, capsys):
    """Another tokenizer's ids, or labels that are not binary: named before any training."""
    from textvae.data import build_store_from_ids, build_store_from_texts

    rng = np.random.default_rng(3)
    ids = {s: rng.integers(3, 12, size=(16, 10)) for s in ("train", "test")}
    build_store_from_ids(
        tmp_path / "ids.zarr",
        ids,
        spec=StoreSpec(vocab_size=12, max_len=16),
        labels={"train": [0, 1] * 8},
    )
    assert _train(str(tmp_path / "ids.zarr"), tmp_path / "a") == EXIT_USER_ERROR
    assert "needs textvae's ids" in _one_error_line(capsys)
    texts = {s: ["a good film", "a bad plot", "fun"] * 6 for s in ("train", "test")}
    labels = {s: [0, 1, 2] * 6 for s in ("train", "test")}
    build_store_from_texts(
        tmp_path / "3.zarr",
        texts,
        spec=StoreSpec(vocab_size=12, max_len=16),
        labels=labels,
        num_classes=3,
    )
    assert _train(str(tmp_path / "3.zarr"), tmp_path / "b") == EXIT_USER_ERROR
    assert "has 3 classes" in _one_error_line(capsys)
    assert not (tmp_path / "b" / "metrics.json").exists()


def _grouped_corpus(tmp_path: Path) -> Path:
    """A JSONL train file of 60 reviews of 12 movies, named by a ``group`` field."""
    from textvae.testing import random_reviews

    rng = np.random.default_rng(2)
    path = tmp_path / "g_train.jsonl"
    movies = rng.integers(0, 12, size=60)
    path.write_text(
        "".join(
            json.dumps({"text": text, "label": label, "group": f"tt{movie}"}) + "\n"
            for (text, label), movie in zip(random_reviews(rng, 60), movies, strict=True)
        )
    )
    return path


def test_a_grouped_store_trains_and_resumes_choosing_best_by_selection(tmp_path, capsys):
    """Validation holds out whole groups (said in the log), best.keras is chosen by
    ``val_selection`` (in history.csv and state.json), and a resumed run keeps both."""
    import math

    from textvae.data import build_store, open_corpus

    store = build_store(
        tmp_path / "g.zarr",
        open_corpus(_grouped_corpus(tmp_path)),
        StoreSpec(vocab_size=12, max_len=16, chunk_rows=8),
    )
    out = tmp_path / "run"
    assert _train(store.path, out, "--epochs", "1", "--val-fraction", "0.2") == 0
    logged = capsys.readouterr().out
    assert "held out for validation grouped by group (" in logged
    state = json.loads((out / "state.json").read_text())
    assert state["monitor"] == "val_selection"
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    loss, accuracy = float(rows[0]["val_loss"]), float(rows[0]["val_sentiment_accuracy"])
    assert float(rows[0]["val_selection"]) == pytest.approx(math.log(loss) - accuracy)
    assert state["best"] == pytest.approx(float(rows[0]["val_selection"]))

    assert _train(store.path, out, "--epochs", "2", "--val-fraction", "0.2", "--resume") == 0
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    resumed = json.loads((out / "state.json").read_text())
    assert resumed["monitor"] == "val_selection"
    assert resumed["best"] == pytest.approx(min(float(r["val_selection"]) for r in rows))
    metrics = json.loads((out / "metrics.json").read_text())
    scores = [float(r["val_selection"]) for r in rows]
    assert metrics["evaluated"] == "last.keras"
    assert metrics["best_epoch"] == scores.index(min(scores)) + 1
    said = "best.keras is epoch 1's model" in capsys.readouterr().out
    assert said == (metrics["best_epoch"] == 1)


def test_a_run_resumed_on_a_store_rebuilt_with_groups_keeps_its_random_hold_out(tmp_path, capsys):
    """Started on a store without groups (as built before them), resumed after the store was
    built again with groups: the hold-out stays the run's first, at random."""
    import shutil

    from textvae.data import build_store, open_corpus

    corpus = open_corpus(_grouped_corpus(tmp_path))
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    store = build_store(tmp_path / "g.zarr", corpus, spec)
    group = zarr.open_group(store.path, mode="r+")  # as textvae before groups wrote it
    group.attrs["textvae"] = {k: v for k, v in group.attrs["textvae"].items() if k != "group_by"}
    shutil.rmtree(Path(store.path) / "train" / "groups")
    out = tmp_path / "run"
    assert _train(store.path, out, "--epochs", "1", "--val-fraction", "0.2") == 0
    assert "held out for validation at random" in capsys.readouterr().out
    assert build_store(store.path, corpus, spec, overwrite=True).has_groups("train")
    assert _train(store.path, out, "--epochs", "2", "--val-fraction", "0.2", "--resume") == 0
    assert "held out for validation at random" in capsys.readouterr().out
