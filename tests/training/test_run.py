"""textvae.training.run.RunDir: the run folder's rules, without training (test_train.py trains)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from textvae.config import TrainConfig
from textvae.errors import CheckpointError, OutputDirError
from textvae.training.replaced import MOVED, REPLACED
from textvae.training.run import (
    BEST,
    CONFIG,
    HISTORY,
    LAST,
    STATE,
    VOCAB,
    RunDir,
    TrainingState,
)


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


#: Every file a run writes, listed here by hand: a file missing from the code's list would
#: survive --overwrite and still be refused as no run.
RUN_FILES = [
    "config.json",
    "vocab.json",
    "best.keras",
    "last.keras",
    "state.json",
    "history.csv",
    "metrics.json",
    "latents.png",
    "checkpoint-12.keras",
]


def test_prepare_overwrite_sets_the_artefacts_only_aside(run):
    run.prepare()
    for name in RUN_FILES:
        run.file(name).write_text("old")
    (run.path / "notes.txt").write_text("mine")
    (run.path / "checkpoint-notes.txt").write_text("mine too")
    assert run.existing() == RUN_FILES
    run.prepare(overwrite=True)
    assert run.existing() == []
    assert _files(run) == [REPLACED, "checkpoint-notes.txt", "notes.txt"]
    assert sorted(p.name for p in (run.path / REPLACED).iterdir()) == sorted([MOVED, *RUN_FILES])


# -- --overwrite keeps the old run until the new one commits a checkpoint ----------------------
def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _old_run(run: RunDir) -> dict[str, str]:
    run.prepare()
    for name in RUN_FILES:
        run.file(name).write_text(f"old {name}")
    (run.path / "notes.txt").write_text("mine")
    return _checksums(run.path)


def test_failed_overwrite_gives_the_old_run_back(run):
    before = _old_run(run)
    run.prepare(overwrite=True)
    # the new run writes its first files, then fails before its first checkpoint
    run.write_config(TrainConfig(), {"padding": "post"})
    run.write_vocab(["<pad>", "a"])
    run.file("checkpoint-3.keras").write_text("uncommitted")  # killed before state.json
    # the next command on the folder (here: without --resume or --overwrite) puts it back
    with pytest.raises(OutputDirError, match="already holds a run"):
        RunDir(run.path).prepare()
    assert _checksums(run.path) == before


def test_first_checkpoint_of_the_new_run_deletes_the_old_one(run):
    _old_run(run)
    run.prepare(overwrite=True)
    run.save_checkpoint(_model(), TrainingState(0, batches_done=2, step=2))
    assert _files(run) == ["checkpoint-2.keras", "notes.txt", STATE]
    RunDir(run.path).prepare(resume=True)  # nothing to settle
    assert _files(run) == ["checkpoint-2.keras", "notes.txt", STATE]


def test_kill_while_setting_the_old_run_aside_loses_nothing(run):
    before = _old_run(run)
    aside = run.path / REPLACED
    aside.mkdir()  # killed after moving state.json and one model
    for name in (STATE, BEST):
        run.file(name).rename(aside / name)
    run.prepare(resume=True)
    assert _checksums(run.path) == before


def test_kill_after_the_first_commit_still_deletes_the_old_run(run):
    _old_run(run)
    run.prepare(overwrite=True)
    run.write_state(TrainingState(0, batches_done=1, step=1, checkpoint="checkpoint-1.keras"))
    RunDir(run.path).prepare(resume=True)  # the commit happened: the old run goes
    assert not (run.path / REPLACED).exists() and run.file(STATE).exists()


def test_train_overwrite_that_fails_keeps_the_old_run(run, capsys, monkeypatch):
    import textvae.data.resolve
    from textvae.cli import EXIT_USER_ERROR, train_main

    before = _old_run(run)
    argv = ["--data", str(run.path / "no-such-store.zarr"), "--out", str(run.path)]
    # The missing store is found before anything is touched (next test); here it is found
    # only once the run folder is prepared, as a failure later in the run would be.
    monkeypatch.setattr(textvae.data.resolve, "check_data", lambda *a, **k: None)
    assert train_main([*argv, "--overwrite"]) == EXIT_USER_ERROR
    assert "Traceback" not in capsys.readouterr().err
    assert (run.path / REPLACED).is_dir()  # it failed after setting the old run aside
    with pytest.raises(OutputDirError, match="already holds a run"):
        run.prepare()
    assert _checksums(run.path) == before


def test_train_overwrite_with_missing_data_touches_nothing(run, capsys):
    from textvae.cli import EXIT_USER_ERROR, train_main

    before = _old_run(run)
    argv = ["--data", str(run.path / "no-such-store.zarr"), "--out", str(run.path)]
    assert train_main([*argv, "--overwrite"]) == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "no-such-store.zarr" in line
    assert not (run.path / REPLACED).exists()
    assert _checksums(run.path) == before


@pytest.mark.parametrize("name", RUN_FILES)
def test_any_one_run_file_makes_a_folder_a_run(run, name):
    run.prepare()
    run.file(name).write_text("old")
    with pytest.raises(OutputDirError, match=rf"already holds a run \({name}\)"):
        run.prepare()


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
    [
        ("vocab_size", 30),
        ("targets", "sparse"),
        ("hidden", 16),
        ("decoder", "repeat"),
        ("decoder_cell", "lstm"),
        ("lr_schedule", "linear"),  # the optimizer holds a rate or a schedule: not both
        ("encoder_layers", 1),
    ],
    ids=[
        "vocab_size",
        "targets",
        "model-size",
        "decoder",
        "decoder_cell",
        "lr_schedule",
        "encoder_layers",
    ],
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


def test_run_saved_before_decoder_cell_and_lr_schedule_resumes_as_gru_and_constant(run):
    _resumable(run, TrainConfig())
    saved = json.loads(run.file("config.json").read_text())
    for key in ("decoder_cell", "lr_schedule", "encoder_layers"):
        del saved["model"][key]
    run.file("config.json").write_text(json.dumps(saved))
    assert run.check_resumable(TrainConfig()) == 1
    with pytest.raises(CheckpointError, match="this run asks decoder_cell=lstm"):
        run.check_resumable(TrainConfig().replace(decoder_cell="lstm"))
    with pytest.raises(CheckpointError, match="this run asks encoder_layers=0"):
        run.check_resumable(TrainConfig().replace(encoder_layers=0))


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


def test_best_epoch_is_the_first_lowest_finite_value_of_the_monitor(run):
    run.prepare()
    assert run.best_epoch("val_selection") is None  # no history yet
    for epoch, value in enumerate([3.0, 2.0, float("nan"), 2.0, 2.5]):
        run.append_history(epoch, {"loss": 1.0 - epoch / 10, "val_selection": value})
    assert run.best_epoch("val_selection") == 2  # epoch 1 (0-based): a tie keeps the first
    assert run.best_epoch("loss") == 5
    assert run.best_epoch("val_loss") is None  # not in the history


def test_best_epoch_never_takes_nan(run):
    run.prepare()
    run.append_history(0, {"loss": float("nan")})
    assert run.best_epoch("loss") is None


# -- mid-epoch checkpoints ---------------------------------------------------------------------
def _model():
    import keras

    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(1, name="out")(x))
    model.compile("sgd", "mse")
    return model


def _bias(run: RunDir, name: str) -> float:
    import keras

    return float(keras.models.load_model(run.file(name)).get_layer("out").bias[0])


def _files(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.path.iterdir())


def test_training_state_round_trips_through_state_json(run):
    run.prepare()
    state = TrainingState(
        2,
        batches_done=3,
        step=23,
        steps_per_epoch=10,
        checkpoint="checkpoint-23.keras",
        monitor="val_loss",
        best=1.5,
        seed_states=[[7, 23], [8, 23]],
        metric_states={"loss/total": [40.5], "loss/count": [24.0]},
    )
    run.write_state(state)
    assert run.training_state() == state
    assert run.read_state() == 2


def test_state_json_of_earlier_releases_resumes_from_last_keras(run):
    run.prepare()
    run.file(STATE).write_text('{"epochs_done": 2}')
    assert run.training_state() == TrainingState(2, checkpoint=LAST)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"epochs_done": 1, "checkpoint": "../elsewhere.keras"}', "`checkpoint` is not"),
        ('{"epochs_done": 1, "batches_done": -2}', "`batches_done` is not an integer"),
        ('{"epochs_done": 1, "steps": 3}', r"unknown keys \['steps'\]"),
        ('{"epochs_done": 1, "seed_states": [["a"]]}', "`seed_states`"),
    ],
    ids=["path-outside", "negative-batch", "unknown-key", "bad-seeds"],
)
def test_damaged_training_state_is_a_checkpoint_error(run, content, why):
    config = TrainConfig()
    _resumable(run, config)
    run.file(STATE).write_text(content)
    with pytest.raises(CheckpointError, match=rf"state\.json is damaged \({why}"):
        run.check_resumable(config)


def test_save_checkpoint_commits_each_then_drops_the_one_before(run):
    run.prepare()
    model = _model()
    first = run.save_checkpoint(model, TrainingState(0, batches_done=2, step=2))
    assert first.checkpoint == "checkpoint-2.keras" and run.training_state() == first
    assert run.save_checkpoint(model, TrainingState(0, batches_done=4, step=4)).batches_done == 4
    assert _files(run) == ["checkpoint-4.keras", STATE]
    # At an epoch's end the checkpoint becomes last.keras.
    end = run.save_checkpoint(model, TrainingState(1, step=5))
    assert end.checkpoint == LAST and run.training_state() == end
    assert _files(run) == [LAST, STATE]


def test_a_kill_while_the_model_is_written_keeps_the_previous_checkpoint(run, monkeypatch):
    import keras

    run.prepare()
    model = _model()
    model.get_layer("out").bias.assign([1.0])
    kept = run.save_checkpoint(model, TrainingState(0, batches_done=2, step=2))
    model.get_layer("out").bias.assign([2.0])

    def killed(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04")  # a zip's first bytes, and no more
        raise KeyboardInterrupt  # stands for the kill

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            run.save_checkpoint(model, TrainingState(0, batches_done=3, step=3))
    assert run.training_state() == kept
    assert "checkpoint-3.keras.tmp.keras" in _files(run)
    assert run.recover() == kept
    assert _files(run) == ["checkpoint-2.keras", STATE]
    assert _bias(run, kept.checkpoint) == 1.0


def test_a_kill_before_the_commit_keeps_the_previous_checkpoint(run, monkeypatch):
    run.prepare()
    model = _model()
    kept = run.save_checkpoint(model, TrainingState(0, batches_done=2, step=2))

    def killed(self, state):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunDir, "write_state", killed)
        with pytest.raises(KeyboardInterrupt):
            run.save_checkpoint(model, TrainingState(0, batches_done=3, step=3))
    assert "checkpoint-3.keras" in _files(run)  # complete, but never committed
    assert run.recover() == kept
    assert _files(run) == ["checkpoint-2.keras", STATE]


def test_recover_finishes_an_epoch_end_and_drops_uncommitted_history(run, monkeypatch):
    run.prepare()
    model = _model()
    run.save_checkpoint(model, TrainingState(1, step=5))  # epoch 0 done: last.keras
    model.get_layer("out").bias.assign([3.0])
    for epoch in (0, 1, 2):
        run.append_history(epoch, {"loss": float(epoch)})

    def killed(self, state):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # epoch 1's end, stopped before last.keras
        patch.setattr(RunDir, "_publish_last", killed)
        with pytest.raises(KeyboardInterrupt):
            run.save_checkpoint(model, TrainingState(2, step=10))
    assert run.training_state().checkpoint == "checkpoint-10.keras"
    assert _bias(run, LAST) != 3.0
    state = run.recover()
    assert state == TrainingState(2, step=10, checkpoint=LAST)
    assert _bias(run, LAST) == 3.0 and _files(run) == [HISTORY, LAST, STATE]
    rows = list(csv.DictReader(run.file(HISTORY).read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["0", "1"]  # epoch 2's row was never committed


def _stopped_mid_epoch(run: RunDir, config: TrainConfig) -> None:
    _resumable(run, config)
    run.file("checkpoint-13.keras").write_bytes(b"a model")
    run.write_state(TrainingState(1, batches_done=3, step=13, checkpoint="checkpoint-13.keras"))


def test_check_resumable_mid_epoch_needs_the_same_batches(run):
    config = TrainConfig(batch_size=16, epochs=3)
    _stopped_mid_epoch(run, config)
    assert run.check_resumable(config.replace(epochs=5, checkpoint_steps=9)) == 1
    with pytest.raises(CheckpointError, match=r"middle of epoch 2 with batch_size=16.*same"):
        run.check_resumable(config.replace(batch_size=8))
    with pytest.raises(CheckpointError, match="seed=0, this run asks seed=1"):
        run.check_resumable(config.replace(seed=1))
    run.file("checkpoint-13.keras").unlink()
    with pytest.raises(CheckpointError, match=r"names checkpoint-13\.keras, which is missing"):
        run.check_resumable(config)


def test_prepare_counts_and_overwrites_mid_epoch_checkpoints(run):
    run.prepare()
    run.file("checkpoint-7.keras").write_bytes(b"a model")
    with pytest.raises(OutputDirError, match=r"already holds a run \(checkpoint-7.keras\)"):
        run.prepare()
    run.prepare(overwrite=True)
    assert _files(run) == [REPLACED]
