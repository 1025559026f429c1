"""``textvae-train --devices``: Keras' DataParallel distribution on JAX, on two virtual CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) and in two processes.

Keras reads ``KERAS_BACKEND`` once, at import, and XLA its flags when JAX starts: the runs go
to subprocesses (``devices_worker.py`` beside this file). The suite's own process keeps its
backend (TensorFlow), where ``--devices`` must be refused with a clear error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, train_config_from_args, train_main
from textvae.config import TrainConfig
from textvae.data import StoreSpec, build_store
from textvae.data.discover import open_corpus
from textvae.errors import InvalidArgumentError
from textvae.testing import TINY_TRAIN_ARGS, random_reviews, write_jsonl

WORKER = Path(__file__).with_name("devices_worker.py")
# The same run on one device and on two: float32 sums taken in another order.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    """64 training reviews (8 batches of 8, none partial) and 12 test reviews."""
    root = tmp_path_factory.mktemp("devices")
    rng = np.random.default_rng(1)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 64))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 12))
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    return build_store(root / "s.zarr", open_corpus(root / "c"), spec).path


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env.pop("TF_CONFIG", None)
    return env


def _result(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _worker(store: str, out: Path, *args: str, devices: int = 2, **env: str) -> dict:
    flags = f"--xla_force_host_platform_device_count={devices}"
    done = subprocess.run(
        [sys.executable, str(WORKER), store, str(out), *args],
        env=_env(XLA_FLAGS=flags, **env),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return _result(done.stdout)


def _assert_same_run(a: dict, b: dict) -> None:
    assert [r["epoch"] for r in a["history"]] == [r["epoch"] for r in b["history"]]
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        for key in row_a:
            np.testing.assert_allclose(float(row_a[key]), float(row_b[key]), RTOL, ATOL, key)
    for w_a, w_b in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_allclose(np.asarray(w_a), np.asarray(w_b), RTOL, ATOL)


# -- the option ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "kept"), [(None, None), (1, 1), (4, 4), ("2", 2), ("all", "all")], ids=str
)
def test_devices_values(given, kept):
    config = TrainConfig(devices=given, batch_size=8)
    assert config.devices == kept
    assert TrainConfig.from_dict(config.to_dict()).devices == kept


@pytest.mark.parametrize(
    ("given", "match"),
    [
        (0, r"`devices` must be a positive integer or 'all'.*Received: devices=0"),
        ("two", r"Received: devices='two'"),
        (True, r"Received: devices=True"),
        (3, r"`batch_size` must divide by the number of devices \(`devices`: 3\).*batch_size=8"),
    ],
    ids=["zero", "word", "bool", "uneven-batch"],
)
def test_devices_refused(given, match):
    with pytest.raises(InvalidArgumentError, match=match):
        TrainConfig(devices=given, batch_size=8)


def test_the_devices_flag():
    assert train_config_from_args(["--devices", "all"]).devices == "all"
    assert train_config_from_args(["--devices", "2", "--batch-size", "8"]).devices == 2
    assert train_config_from_args([]).devices is None


def test_other_backends_are_refused_naming_jax(store_path, tmp_path, capsys):
    import keras

    assert keras.backend.backend() != "jax"
    args = ["--data", store_path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS]
    assert train_main([*args, "--devices", "2"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "KERAS_BACKEND=jax" in err and "--devices" in err
    assert not (tmp_path / "run").exists()


# -- on JAX ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_devices_train_and_resume_as_one(store_path, tmp_path):
    """One epoch, then a resume for the second, on one device and on two (the same global
    batch): the same losses every epoch, the same final weights within float tolerance, and
    the same run folder."""
    common = ("--val-fraction", "0", "--checkpoint-minutes", "0")

    def run(name: str, devices: str) -> dict:
        return _worker(
            store_path,
            tmp_path / name,
            *(*common, "--devices", devices, "--epochs", "1"),
            "::",
            *(*common, "--devices", devices, "--epochs", "2", "--resume"),
        )

    one, two = run("one", "1"), run("two", "all")
    assert one["devices"] == two["devices"] == 2
    assert one["codes"] == two["codes"] == [0, 0]
    _assert_same_run(one, two)
    assert two["metrics"]["epochs"] == 2 and two["metrics"]["processes"] == 1
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == files


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_processes_each_serve_their_shard(store_path, tmp_path):
    """Two processes on loopback (jax.distributed through Keras' KERAS_DISTRIBUTION_*
    variables, gloo collectives on CPU), one device each: each serves its half of every epoch
    (4 rows of each batch of 8), process 0 alone writes the run folder and evaluates."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    args = ("--devices", "all", "--epochs", "1", "--val-fraction", "0", "--verbose", "0")
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), store_path, str(out), *args],
            env=_env(
                XLA_FLAGS="--xla_force_host_platform_device_count=1",
                JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in (0, 1)
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr[-4000:]
    chief, other = (_result(stdout) for stdout, _ in outputs)
    assert (chief["process"], other["process"]) == (0, 1)
    assert chief["devices"] == other["devices"] == 2
    assert chief["codes"] == other["codes"] == [0]
    for stdout, _ in outputs:  # 64 training rows: 32 a process, 8 steps of 4 rows each
        assert "32 reviews/epoch, 8 steps of 8 split among 2 devices in 2 processes" in stdout
    assert "worker finished; the chief writes the results" in outputs[1][0]
    assert chief["metrics"]["epochs"] == 1 and chief["metrics"]["processes"] == 2
    assert [row["epoch"] for row in chief["history"]] == ["0"]
    assert np.isfinite(float(chief["history"][0]["loss"]))
    assert {p.name for p in out.iterdir()} >= {"last.keras", "metrics.json", "history.csv"}


@pytest.mark.timeout(300)
def test_more_devices_than_jax_sees_are_refused(store_path, tmp_path):
    result = _worker(store_path, tmp_path / "run", "--devices", "4", devices=2)
    assert result["codes"] == [EXIT_USER_ERROR]
