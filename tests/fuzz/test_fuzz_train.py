"""Fuzz of textvae-train's arguments: flags, data, store and run folders, ``TF_CONFIG``.

textvae-train is followed to its first and last batches and stopped where the model would be
built. Beside the fuzz, the train inputs it found, kept as plain tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
from fuzz_harness import (
    PATH_KINDS,
    Reached,
    check_outcome,
    example_dir,
    make_path,
    run_command,
    stop_at_model,
    tally,
)
from fuzz_strategies import FLOAT_TEXT, INT_TEXT, WORD, cli_flags, fuzz_settings, mostly
from hypothesis import given
from hypothesis import strategies as st

from textvae.cli import train_main

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


SMALL_INT = st.sampled_from(["1", "2", "8"])
UNIT = st.sampled_from(["0", "0.1", "0.5"])
TRAIN_FLAGS = {
    "--vocab": mostly(st.just("12"), INT_TEXT),
    "--max-len": mostly(st.just("16"), INT_TEXT),
    "--batch-size": mostly(SMALL_INT, INT_TEXT),
    "--epochs": mostly(SMALL_INT, INT_TEXT),
    "--train-rows": mostly(SMALL_INT, INT_TEXT),
    "--eval-rows": mostly(SMALL_INT, INT_TEXT),
    "--targets": mostly(st.sampled_from(["onehot", "sparse"]), WORD),
    "--dtype": mostly(st.sampled_from(["float32", "float16", "uint8"]), WORD),
    "--workers": mostly(SMALL_INT, INT_TEXT),
    "--max-queue-size": mostly(SMALL_INT, INT_TEXT),
    "--embedding-dim": mostly(SMALL_INT, INT_TEXT),
    "--hidden": mostly(SMALL_INT, INT_TEXT),
    "--dense": mostly(SMALL_INT, INT_TEXT),
    "--latent": mostly(SMALL_INT, INT_TEXT),
    "--epsilon-std": mostly(st.sampled_from(["1", "0.01"]), FLOAT_TEXT),
    "--sentiment-weight": mostly(UNIT, FLOAT_TEXT),
    "--free-bits": mostly(UNIT, FLOAT_TEXT),
    "--decoder": mostly(st.sampled_from(["autoregressive", "repeat"]), WORD),
    "--word-dropout": mostly(UNIT, FLOAT_TEXT),
    "--val-fraction": mostly(st.sampled_from(["0", "0.5", "0.96"]), FLOAT_TEXT),
    "--learning-rate": mostly(st.sampled_from(["0.001", "1e-9", "10"]), FLOAT_TEXT),
    "--kl-warmup-epochs": mostly(UNIT, FLOAT_TEXT),
    "--seed": mostly(st.sampled_from(["0", "7"]), INT_TEXT),
    "--verbose": mostly(st.sampled_from(["0", "1", "2"]), INT_TEXT),
    "--resume": st.none(),
    "--overwrite": st.none(),
    "--quick": st.none(),
    "--no-encoder-pooling": st.none(),
    "--no-decoder-position": st.none(),
    "--target-window": mostly(st.sampled_from(["4", "16", "17"]), INT_TEXT),
    "--bigram-buckets": mostly(st.sampled_from(["0", "1", "64"]), INT_TEXT),
    "--encoder-dropout": mostly(UNIT, FLOAT_TEXT),
    "--storage-option": st.sampled_from(["anon=true", "x"]),
}
TF_CONFIGS = st.sampled_from(
    [None, "", "{", "[]", "3", '{"cluster": 5}', '{"cluster": {"ps": ["h:1"]}}', '{"task": []}']
)


def _make_run(kind: str, where: Path) -> str:
    """A --out folder: fresh, a file, or a run whose checkpoint files are damaged."""
    out = where / "run"
    if kind in ("fresh", "a-file", "under-a-file", "unwritable", "empty"):
        return make_path(kind, where, None)  # type: ignore[arg-type]
    out.mkdir()
    (out / "last.keras").write_bytes(b"PK\x03\x04 not a model")
    config = {"vocab_size": 12, "max_len": 16, "targets": "onehot", "model": {}}
    (out / "config.json").write_text(json.dumps(config))
    states = {"damaged-state": "{oops", "negative-state": '{"epochs_done": -1}'}
    (out / "state.json").write_text(states.get(kind, '{"epochs_done": 0}'))
    if kind == "damaged-config":
        (out / "config.json").write_bytes(b"\xff\xfe")
    return str(out)


RUN_KINDS = [
    "fresh",
    "a-file",
    "under-a-file",
    "unwritable",
    "empty",
    "damaged-state",
    "negative-state",
    "damaged-config",
    "garbage-model",
]


@pytest.mark.slow
@fuzz_settings(50)
@given(
    data=mostly(st.sampled_from(["store", "corpus"]), st.sampled_from(PATH_KINDS)),
    store=mostly(st.none(), st.sampled_from(["fresh", "store", "a-file", "empty"])),
    out=mostly(st.just("fresh"), st.sampled_from(RUN_KINDS)),
    flags=cli_flags(TRAIN_FLAGS),
    tf_config=mostly(st.none(), TF_CONFIGS),
)
def test_fuzz_train_arguments(world, data, store, out, flags, tf_config):
    with example_dir(world.root) as where:
        argv = ["--data", make_path(data, where, world), "--out", _make_run(out, where)]
        argv += ["--vocab", "12", "--max-len", "16"]  # the store's sizes; a flag may change them
        if store is not None:
            argv += ["--store", make_path(store, where / "s", world)]
        env = {"TEXTVAE_CACHE": str(world.cache), "TF_CONFIG": tf_config or ""}
        with (
            mock.patch.dict(os.environ, env),
            stop_at_model(),
        ):
            try:
                code, _, err = run_command(train_main, [*argv, *flags], where)
            except Reached:
                tally("train arguments", "reached training")
                return
        check_outcome("train arguments", code, err)
        assert code != 0, "training was stopped before the model: only errors end here"


TRAIN_CASES = {
    "seed-beyond-numpy": (["--seed", str(2**32)], {}, "`seed` must be an integer in [0, "),
    "negative-seed": (["--seed", "-1"], {}, "`seed`"),
    "queue-beyond-memory": (["--max-queue-size", str(10**18)], {}, "more than this machine"),
    "thread-per-row": (["--workers", "100000"], {}, "`workers` must be at most 256"),
    "empty-out": (["--out", ""], {}, "`out` must be a non-empty path"),
    "infinite-warm-up": (["--kl-warmup-epochs", "inf"], {}, "(not infinite)"),
    "infinite-rate": (["--learning-rate", "inf"], {}, "`learning_rate`"),
    "hold-out-everything": (["--val-fraction", "0.99"], {}, "leaves none to keep"),
    "cluster-not-object": ([], {"TF_CONFIG": '{"cluster": 5}'}, "'cluster' must be a JSON"),
    "task-not-object": ([], {"TF_CONFIG": '{"cluster": {"worker": ["h:1"]}, "task": "w"}'}, "task"),
    "workers-not-list": ([], {"TF_CONFIG": '{"cluster": {"worker": "h:1"}}'}, "host:port"),
}


@pytest.mark.parametrize("case", TRAIN_CASES, ids=list(TRAIN_CASES))
def test_train_inputs_found_by_the_fuzz(world, tmp_path, case):
    flags, env, message = TRAIN_CASES[case]
    argv = ["--data", make_path("store", tmp_path, world), "--out", str(tmp_path / "run")]
    argv += ["--vocab", "12", "--max-len", "16", *flags]
    with mock.patch.dict(os.environ, env), stop_at_model():
        code, _, err = run_command(train_main, argv, tmp_path)
    assert message in check_outcome("regressions", code, err)
