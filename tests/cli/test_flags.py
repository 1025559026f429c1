"""The commands' flags come from the config fields: every field has its flag, default and help;
``--config FILE`` re-runs a run's config.json; ``--version`` on every command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

import pytest

import textvae
from textvae.cli import (
    EXIT_USER_ERROR,
    _ingest_parser,
    _train_parser,
    ingest_config_from_args,
    ingest_main,
    sample_main,
    train_config_from_args,
    train_main,
    verify_main,
)
from textvae.config import GPU, QUICK, IngestConfig, ModelConfig, StoreSpec, TrainConfig
from textvae.training.run import RunDir

PARSERS = {"train": (_train_parser, TrainConfig), "ingest": (_ingest_parser, IngestConfig)}


def _leaf_fields(cls):
    """Every field of ``cls``, the fields of a config it holds (a dataclass default) spread."""
    for field in dataclasses.fields(cls):
        factory = field.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            yield from _leaf_fields(factory)
        else:
            yield field


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}


def _default_in_help(help_text: str) -> str:
    """The default a help text names: what stands between its last 'default ' and ')'."""
    found = re.search(r"default ([^()]+)\)$", help_text)
    assert found, help_text
    return found.group(1)


@pytest.mark.parametrize("command", PARSERS)
def test_every_field_has_its_flag_default_and_help(command):
    make_parser, cls = PARSERS[command]
    parser, _ = make_parser()
    actions = _actions(parser)
    for field in _leaf_fields(cls):
        action = actions.get(field.name)
        assert action is not None, f"{cls.__name__}.{field.name} has no flag"
        if field.default is dataclasses.MISSING:  # required: a positional argument
            assert not action.option_strings and action.required, field.name
            assert action.help, field.name
            continue
        assert action.default == field.default, field.name
        assert "--" + field.name.replace("_", "-") in action.option_strings or (
            field.name == "storage_options" and action.option_strings == ["--storage-option"]
        ), (field.name, action.option_strings)
        shown = _default_in_help(action.help)
        if isinstance(field.default, bool):
            assert shown == ("on" if field.default else "off"), (field.name, shown)
        elif isinstance(field.default, int | float):
            assert float(shown) == field.default, (field.name, shown)
            # a number says what it counts: "(UNIT; default N)"
            assert re.search(r"\([^()]+; default [^()]+\)$", action.help), action.help
        elif field.default is not None:
            assert shown == str(field.default), (field.name, shown)


@pytest.mark.parametrize("command", PARSERS)
def test_each_flag_given_its_default_builds_the_default_config(command):
    """The flag's type and choices accept the field's default (the flag parses what the field
    holds)."""
    make_parser, _ = PARSERS[command]
    _, flags = make_parser()
    parse = train_config_from_args if command == "train" else ingest_config_from_args
    positional = [] if command == "train" else ["src", "out.zarr"]
    expected = parse(positional)
    for flag in flags:
        if flag.meta["group"] == "positional" or flag.default is None:
            continue
        if isinstance(flag.default, bool):
            argv = [flag.names[0] if flag.default else "--no-" + flag.names[0][2:]]
        else:
            argv = [flag.names[0], str(flag.default)]
        assert parse([*positional, *argv]) == expected, argv


def test_vocab_size_beside_vocab():
    for flag in ("--vocab-size", "--vocab"):
        assert train_config_from_args([flag, "500"]).vocab_size == 500
        assert ingest_config_from_args(["src", "out.zarr", flag, "500"]).spec == StoreSpec(
            vocab_size=500
        )


def test_help_is_grouped():
    parser, flags = _train_parser()
    text = parser.format_help()
    titles = [group.title for group in parser._action_groups]
    sections = [title.split(":")[0] for title in titles[2:]]  # after positionals and options
    assert sections == ["data", "model", "training", "checkpoints", "output"]
    for flag in flags:
        group = next(g for g in parser._action_groups if flag.names[0] in _group_flags(g))
        assert group.title.split(":")[0] == flag.meta["group"], flag.name
    assert "exit with code 128 + the signal's number (143 and 130)" in " ".join(text.split())
    ingest_titles = [g.title.split(":")[0] for g in _ingest_parser()[0]._action_groups]
    assert ingest_titles[2:] == ["data", "ingest", "output"]


def _group_flags(group) -> set[str]:
    return {name for action in group._group_actions for name in action.option_strings}


def test_flags_not_given_keep_the_preset_and_given_ones_win():
    config = train_config_from_args(["--quick", "--hidden", "32", "--no-encoder-pooling"])
    assert config.model.hidden == 32 and config.model.encoder_pooling is False
    assert config.model.latent == QUICK["latent"] and config.batch_size == QUICK["batch_size"]
    assert config == TrainConfig().replace(**{**QUICK, "hidden": 32, "encoder_pooling": False})


def test_preset_gpu_is_the_seeds_size_with_an_lstm_decoder_and_a_linear_decay():
    config = train_config_from_args(["--preset", "gpu"])
    assert config == TrainConfig().replace(**GPU)
    assert (config.vocab_size, config.max_len, config.model.hidden, config.model.latent) == (
        20000,
        300,
        500,
        200,
    )
    assert 128 <= config.batch_size <= 256 and config.targets == "sparse"
    assert config.model.decoder_cell == "lstm" and config.model.lr_schedule == "linear"
    assert config.workers <= 16


def test_explicit_flags_override_the_gpu_preset():
    argv = ["--preset", "gpu", "--batch-size", "64", "--decoder-cell", "gru", "--workers", "2"]
    config = train_config_from_args(argv)
    assert config == TrainConfig().replace(
        **{**GPU, "batch_size": 64, "decoder_cell": "gru", "workers": 2}
    )


def test_quick_is_preset_quick():
    assert train_config_from_args(["--quick"]) == train_config_from_args(["--preset", "quick"])
    assert train_config_from_args(["--quick"]) == TrainConfig().replace(**QUICK)


@pytest.mark.parametrize("argv", [["--quick", "--preset", "gpu"], ["--preset", "gpu", "--quick"]])
def test_quick_and_preset_together_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(argv)
    assert exc.value.code == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert "--preset" in line and "not allowed with" in line and "--quick" in line


def test_an_unknown_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(["--preset", "huge"])
    assert exc.value.code == EXIT_USER_ERROR
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_bad_decoder_cell_and_lr_schedule_are_refused():
    with pytest.raises(ValueError, match="decoder_cell"):
        ModelConfig(decoder_cell="rnn")
    with pytest.raises(ValueError, match="lr_schedule"):
        ModelConfig(lr_schedule="cosine")


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"encoder_layers": 3}, r"`encoder_layers` must be an integer in \[0, 3\)"),
        ({"encoder_layers": -1}, r"`encoder_layers` must be an integer in \[0, 3\)"),
        ({"encoder_layers": 0, "encoder_pooling": False}, "--encoder-pooling"),
    ],
)
def test_bad_encoder_layers_are_refused(settings, why):
    with pytest.raises(ValueError, match=why):
        ModelConfig(**settings)
    assert (
        ModelConfig(encoder_layers=0, encoder_pooling=False, bigram_buckets=8).encoder_layers == 0
    )
    assert train_config_from_args(["--quick", "--encoder-layers", "1"]).model.encoder_layers == 1


# -- --config FILE ---------------------------------------------------------------------------
def _saved_run(tmp_path, config: TrainConfig) -> str:
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    run.write_config(config, {"vocab_size": config.vocab_size, "padding": "pre"})
    return str(run.path / "config.json")


def test_config_file_round_trip_with_an_override(tmp_path):
    saved = TrainConfig(
        data="corpus/",
        batch_size=8,
        train_rows=64,
        checkpoint_minutes=0.5,
        run_eagerly=True,
        model=ModelConfig(hidden=16, decoder="repeat", encoder_pooling=False),
    )
    file = _saved_run(tmp_path, saved)
    assert train_config_from_args(["--config", file]) == saved
    again = train_config_from_args(["--config", file, "--batch-size", "4", "--latent", "8"])
    assert again == saved.replace(batch_size=4, latent=8)
    assert train_config_from_args(["--config", file, "--no-run-eagerly"]).run_eagerly is False
    # the order: the defaults, --config, --quick / --preset, the other flags
    quick = train_config_from_args(["--config", file, "--quick", "--epochs", "3"])
    assert quick == saved.replace(**{**QUICK, "epochs": 3})
    gpu = train_config_from_args(["--config", file, "--preset", "gpu", "--epochs", "3"])
    assert gpu == saved.replace(**{**GPU, "epochs": 3})


def test_config_file_asks_for_redacted_storage_options(tmp_path, capsys):
    saved = TrainConfig(data="s3://b/imdb.zarr", storage_options={"key": "k", "anon": True})
    file = _saved_run(tmp_path, saved)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["storage_options"] == {
        "key": "***",
        "anon": "***",
    }
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(["--config", file, "--storage-option", "key=k"])
    assert exc.value.code == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert "storage options anon are not saved" in line and "--storage-option anon=" in line
    options = ["--storage-option", "key=k", "--storage-option", "anon=true"]
    assert train_config_from_args(["--config", file, *options]) == saved


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("{not json", "cannot read it as JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"batch_size": 8, "colour": "red"}', "TrainConfig has no setting 'colour'"),
        ('{"batch_size": 0}', "`batch_size` must be a positive integer"),
        ('{"model": {"hidden": -1}}', "`hidden` must be a positive integer"),
        ('{"model": 3}', "`model` must be a mapping"),
    ],
    ids=["missing", "not-json", "not-object", "unknown", "bad-value", "bad-model", "model-int"],
)
def test_bad_config_file_is_one_usage_line(tmp_path, capsys, content, message):
    file = tmp_path / "config.json"
    if content is not None:
        file.write_text(content)
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(["--config", str(file)])
    assert exc.value.code == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("textvae-train: error: ") and message in line, line
    if content is not None and message.startswith(("TrainConfig", "`")):
        assert f"--config {file}" in line


def test_from_dict_is_to_dicts_inverse():
    config = TrainConfig(epochs=3, model=ModelConfig(latent=8))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"latent": 8, "epochs": 3}) == config  # model fields by name


# -- --version -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "main", [ingest_main, train_main, sample_main, verify_main], ids=lambda m: m.__name__
)
def test_version_on_every_command(main, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"textvae {textvae.__version__}\n"


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, textvae-sample's subcommands each on their own."""
    from textvae.cli import _sample_parser, _verify_parser

    parsers = {
        "train": _train_parser()[0],
        "ingest": _ingest_parser()[0],
        "verify": _verify_parser()[0],
    }
    sample = _sample_parser()
    (sub,) = [a for a in sample._actions if isinstance(a, argparse._SubParsersAction)]
    parsers.update({f"sample {name}": p for name, p in sub.choices.items()})
    return parsers


@pytest.mark.parametrize("command", list(_all_parsers()))
def test_every_flags_help_names_its_default(command):
    """Every optional flag but --help and --version says its default as "default X)", X
    being what argparse really uses (a bool flag: on/off)."""
    parser = _all_parsers()[command]
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        shown = _default_in_help(" ".join(action.help.split()))
        default = action.default
        if isinstance(default, bool) or action.nargs == 0:  # store_true, --x/--no-x
            assert shown.startswith("on" if default else "off"), (action.dest, shown)
        elif default is None:  # what None means: "none", "all", "a cache folder", ...
            assert shown.strip(), action.dest
        elif isinstance(default, int | float):
            assert float(shown.split()[0].rstrip(":")) == default, (action.dest, shown)
        else:
            assert shown.startswith(str(default)), (action.dest, shown)
        checked += 1
    assert checked >= 2, command


def test_help_output_group_holds_the_console_switches():
    parser, _ = _train_parser()
    output = next(g for g in parser._action_groups if g.title.startswith("output"))
    names = _group_flags(output)
    assert {"--verbose", "--log-seconds", "--show-backend-log", "--out"} <= names
    assert train_config_from_args(["--show-backend-log"]) == TrainConfig()  # not a setting
