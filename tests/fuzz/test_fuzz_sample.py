"""Fuzz of textvae-sample's arguments: commands, texts, flags and run folders (usable, missing,
damaged), on an untrained tiny model. Beside the fuzz, the sample inputs it found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fuzz_harness import check_outcome, example_dir, make_path, run_command
from fuzz_strategies import FLOAT_TEXT, INT_TEXT, WORD, cli_flags, fuzz_settings, mostly
from hypothesis import given
from hypothesis import strategies as st

from textvae.cli import sample_main
from textvae.data.store import TokenStore

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


SAMPLE_FLAGS = {
    "--checkpoint": mostly(st.just("best.keras"), st.one_of(st.just("../x"), WORD)),
    "--temperature": mostly(st.sampled_from(["0", "0.5", "2", "1e-300", "1e300"]), FLOAT_TEXT),
    "--top-k": mostly(st.sampled_from(["1", "5", "1000"]), INT_TEXT),
    "--top-p": mostly(st.sampled_from(["0.5", "0.9", "1"]), FLOAT_TEXT),
    "--verbose": mostly(st.sampled_from(["0", "1", "2"]), INT_TEXT),
}
COMMAND_FLAGS = {
    "prior": {
        "--n": mostly(st.sampled_from(["1", "3"]), INT_TEXT),
        "--seed": mostly(st.sampled_from(["0", "4294967296"]), INT_TEXT),
    },
    "interpolate": {"--steps": mostly(st.sampled_from(["2", "3"]), INT_TEXT)},
}
COMMAND_TEXTS = {
    "reconstruct": st.lists(WORD, min_size=1, max_size=3),
    "interpolate": st.lists(WORD, min_size=2, max_size=2),
}


@st.composite
def sample_arguments(draw) -> list[str]:
    """``COMMAND [texts] [flags]`` after the run folder: mostly what the command takes."""
    command = draw(mostly(st.sampled_from(["reconstruct", "prior", "interpolate"]), WORD))
    texts = draw(mostly(COMMAND_TEXTS.get(command, st.just([])), st.lists(WORD, max_size=3)))
    flags = draw(cli_flags({**SAMPLE_FLAGS, **COMMAND_FLAGS.get(command, {})}))
    return [command, *texts, *flags]


@pytest.fixture(scope="module")
def tiny_run(world) -> Path:
    """A run folder textvae-sample can use: an untrained tiny model (no training needed to
    decode) with the store's vocabulary and configuration."""
    from textvae.config import TrainConfig
    from textvae.model.vae import build_vae
    from textvae.training.run import BEST, RunDir

    store = TokenStore.open(world.store)
    run = RunDir(world.root / "tiny-run")
    run.prepare()
    config = TrainConfig(vocab_size=12, max_len=16).replace(hidden=4, dense=4, latent=2)
    run.write_config(config, store.attrs)
    run.write_vocab(store.vocab.tokens)
    model = build_vae(12, 16, hidden=4, dense=4, latent=2, embedding_dim=4, seed=0)
    model.optimizer.build(model.trainable_variables)  # saved as after training
    run.save_model(model, BEST)
    return run.path


def _make_sample_run(kind: str, where: Path, tiny_run: Path) -> str:
    """A run folder for textvae-sample: a usable one, missing, a file, or damaged files."""
    if kind == "usable":
        return str(tiny_run)
    if kind in ("missing", "a-file", "empty", "empty-dir"):
        return make_path(kind, where, None)  # type: ignore[arg-type]
    out = where / "run"
    shutil.copytree(tiny_run, out)
    files = {}
    damage = {
        "bad-vocab": ("vocab.json", '["a", "b"]'),
        "vocab-not-json": ("vocab.json", "\x00"),
        "config-list": ("config.json", "[1, 2]"),
        "odd-padding": ("config.json", json.dumps({"store_attrs": {"padding": 7}})),
        "garbage-model": ("best.keras", "PK not a model"),
    }
    name, text = damage[kind]
    files[name] = text
    for file, content in files.items():
        (out / file).write_text(content)
    return str(out)


@pytest.mark.slow
@fuzz_settings(30)
@given(
    arguments=sample_arguments(),
    run=mostly(
        st.just("usable"),
        st.sampled_from(
            [
                "missing",
                "a-file",
                "empty",
                "empty-dir",
                "bad-vocab",
                "vocab-not-json",
                "config-list",
                "odd-padding",
                "garbage-model",
            ]
        ),
    ),
)
def test_fuzz_sample_arguments(world, tiny_run, arguments, run):
    with example_dir(world.root) as where:
        command, *rest = arguments
        argv = [command, _make_sample_run(run, where, tiny_run), *rest]
        code, out, err = run_command(sample_main, argv, where)
        check_outcome("sample arguments", code, err)
        assert code != 0 or (run == "usable" and out), "only the usable run decodes"


SAMPLE_CASES = {
    "negative-seed": (["prior", "RUN", "--seed", "-1"], "`seed` must be a non-negative"),
    "a-trillion-draws": (["prior", "RUN", "--n", str(10**12)], "`n` must be an integer in"),
    "a-trillion-steps": (["interpolate", "RUN", "a", "b", "--steps", str(10**12)], "`steps`"),
    "empty-run": (["prior", ""], "`out` must be a non-empty path"),
    "odd-padding": (["reconstruct", "odd-padding", "a film"], "config.json is damaged"),
}


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=list(SAMPLE_CASES))
def test_sample_inputs_found_by_the_fuzz(world, tiny_run, tmp_path, case):
    argv, message = SAMPLE_CASES[case]
    run = str(tiny_run) if case != "odd-padding" else _make_sample_run(case, tmp_path, tiny_run)
    argv = [run if a in ("RUN", "odd-padding") else a for a in argv]
    code, _, err = run_command(sample_main, argv, tmp_path)
    assert message in check_outcome("regressions", code, err)
