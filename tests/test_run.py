"""textvae.run.RunDir: the run folder's rules, without training (tests/test_train.py trains)."""

from __future__ import annotations

import csv
import json

import pytest

from textvae.config import TrainConfig
from textvae.errors import CheckpointError, OutputDirError
from textvae.run import ARTEFACTS, BEST, CONFIG, HISTORY, LAST, STATE, VOCAB, RunDir


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "run")


def _resumable(run: RunDir, config: TrainConfig, epochs_done: int = 1) -> None:
    run.prepare()
    run.write_config(config, {"padding": "post"})
    run.file(LAST).write_bytes(b"a model")
    run.write_state(epochs_done)


def test_prepare_creates_the_folder_and_refuses_an_existing_run(run):
    run.prepare()
    assert run.path.is_dir() and not any(run.path.iterdir())
    run.prepare()  # an empty folder is no run
    run.file(HISTORY).write_text("epoch,loss\n")
    with pytest.raises(OutputDirError, match=r"already holds a run \(history.csv\).*--resume"):
        run.prepare()
    run.prepare(resume=True)
    assert run.file(HISTORY).exists()


def test_prepare_overwrite_deletes_the_artefacts_only(run):
    run.prepare()
    for name in ARTEFACTS:
        run.file(name).write_text("old")
    (run.path / "notes.txt").write_text("mine")
    run.prepare(overwrite=True)
    assert sorted(p.name for p in run.path.iterdir()) == ["notes.txt"]


def test_prepare_refuses_an_unwritable_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputDirError, match="cannot write to --out"):
        RunDir(blocker / "out").prepare()


def test_check_resumable_returns_the_epochs_done(run):
    config = TrainConfig(epochs=3)
    _resumable(run, config, epochs_done=2)
    assert run.check_resumable(config) == 2
    assert run.store_attrs() == {"padding": "post"}


def test_check_resumable_without_a_checkpoint(run):
    run.prepare()
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        run.check_resumable(TrainConfig())


@pytest.mark.parametrize(
    ("field", "value"),
    [("vocab_size", 30), ("targets", "sparse"), ("hidden", 16), ("decoder", "repeat")],
    ids=["vocab_size", "targets", "model-size", "decoder"],
)
def test_check_resumable_refuses_another_shape(run, field, value):
    _resumable(run, TrainConfig())
    with pytest.raises(CheckpointError, match=f"this run asks {field}={value}"):
        run.check_resumable(TrainConfig().replace(**{field: value}))


def test_run_of_textvae_0_1_resumes_as_the_seeds_decoder(run):
    _resumable(run, TrainConfig())
    saved = json.loads(run.file("config.json").read_text())
    for key in ("decoder", "word_dropout", "encoder_pooling"):  # 0.1 wrote none of them
        del saved["model"][key]
    run.file("config.json").write_text(json.dumps(saved))
    old = TrainConfig().replace(decoder="repeat", encoder_pooling=False)
    assert run.check_resumable(old) == 1
    with pytest.raises(CheckpointError, match="this run asks decoder=autoregressive"):
        run.check_resumable(TrainConfig())


@pytest.mark.parametrize(
    "content",
    ['{"epochs_done": 2', '{"epochs": 2}', '{"epochs_done": -1}', "[2]", "\x00\xff"],
    ids=["truncated", "no-key", "negative", "not-object", "binary"],
)
def test_damaged_state_json_is_a_checkpoint_error(run, content):
    config = TrainConfig()
    _resumable(run, config)
    run.file(STATE).write_text(content, encoding="latin-1")
    with pytest.raises(CheckpointError, match=r"state\.json is damaged.*--overwrite"):
        run.check_resumable(config)


def test_damaged_config_json_is_a_checkpoint_error(run):
    _resumable(run, TrainConfig())
    run.file(CONFIG).write_text("{")
    with pytest.raises(CheckpointError, match=r"config\.json is damaged"):
        run.check_resumable(TrainConfig())


def test_state_is_written_atomically(run):
    run.prepare()
    run.write_state(3)
    assert json.loads(run.file(STATE).read_text()) == {"epochs_done": 3}
    assert run.read_state() == 3
    assert sorted(p.name for p in run.path.iterdir()) == [STATE]  # no temporary file left


def test_vocab_and_config_round_trip(run):
    run.prepare()
    run.write_vocab(["<pad>", "<start>", "<oov>", "film"])
    assert run.read_vocab() == ("<pad>", "<start>", "<oov>", "film")
    config = TrainConfig(epochs=2)
    run.write_config(config, {"max_len": 16})
    saved = run.read_config()
    assert saved["epochs"] == 2 and saved["store_attrs"] == {"max_len": 16}


def test_missing_files_point_at_a_run(run):
    run.prepare()
    for read in (run.read_vocab, run.read_config, run.load_model):
        with pytest.raises(CheckpointError, match="does not exist: point at the --out folder"):
            read()


def test_a_damaged_model_is_a_checkpoint_error(run):
    run.prepare()
    run.file(BEST).write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match=r"cannot load the checkpoint .*best\.keras"):
        run.load_model()
    run.file(VOCAB).write_text('{"a": 1}')
    with pytest.raises(CheckpointError, match="not a JSON list"):
        run.read_vocab()


def test_history_rows_append_under_one_header(run):
    run.prepare()
    run.append_history(0, {"loss": 2.5, "kl": 0.25})
    run.append_history(1, {"loss": 2.0, "kl": 0.5})
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert rows == [
        {"epoch": "0", "kl": "0.25", "loss": "2.5"},
        {"epoch": "1", "kl": "0.5", "loss": "2.0"},
    ]
    run.clear_history()
    assert not run.file(HISTORY).exists()
