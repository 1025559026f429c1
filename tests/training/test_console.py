"""Progress on the console: Keras' bar on a terminal only; plain lines in a log file or a pipe
(textvae.training.console), and a quick run's log that a person can read."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from textvae._startup import LOG_LEVEL_ENV
from textvae.testing import TINY_TRAIN_ARGS
from textvae.training import console
from textvae.training.console import LineBar, ProgressLines, fit_callbacks, keras_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """Stands in for ``time.perf_counter`` in the console module: advanced by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(console.time, "perf_counter", fake)
    return fake


def test_keras_bar_only_at_verbose_1_on_a_terminal():
    assert keras_bar(1, _Tty())
    assert not keras_bar(1, io.StringIO())
    assert not keras_bar(2, _Tty())
    assert not keras_bar(0, _Tty())


def test_fit_callbacks_off_a_terminal():
    # pytest captures stdout: not a terminal, as in a log file.
    assert fit_callbacks(0) == (0, [])
    verbose, (lines,) = fit_callbacks(1, 30.0)
    assert verbose == 0 and isinstance(lines, ProgressLines) and lines.every_seconds == 30.0
    verbose, (lines,) = fit_callbacks(2, 30.0)
    assert verbose == 0 and lines.every_seconds == 0  # one line per epoch only


def test_progress_lines_every_n_seconds_and_each_epoch(clock):
    said: list[str] = []
    lines = ProgressLines(every_seconds=60, log=said.append)
    lines.set_params({"epochs": 2, "steps": 10, "verbose": 0})
    lines.on_epoch_begin(0)
    for batch in range(10):
        clock.now += 25  # a step every 25 s: a line at steps 3, 5 (75 s, 125 s: >= 60 apart), 8
        lines.on_train_batch_end(batch, {"loss": 5.123456, "kl": 0.5})
    lines.on_epoch_end(0, {"loss": 5.0, "val_loss": 5.5})
    assert said == [
        "epoch 1/2: step 3/10 (30%), 75 s, ~175 s left; loss 5.123, kl 0.5",
        "epoch 1/2: step 6/10 (60%), 150 s, ~100 s left; loss 5.123, kl 0.5",
        "epoch 1/2: step 9/10 (90%), 225 s, ~25 s left; loss 5.123, kl 0.5",
        "epoch 1/2: 10 steps in 250 s (25.00 s/step); loss 5, val_loss 5.5",
    ]


def test_progress_lines_per_epoch_only(clock):
    said: list[str] = []
    lines = ProgressLines(every_seconds=0, log=said.append)
    lines.set_params({"epochs": 3, "steps": 4})
    for epoch in range(3):
        lines.on_epoch_begin(epoch)
        for batch in range(4):
            clock.now += 100
            lines.on_train_batch_end(batch, {"loss": 1.0})
        lines.on_epoch_end(epoch, {"loss": 1.0})
    assert [line.split(":")[0] for line in said] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


def test_line_bar_prints_at_intervals_and_once_at_the_end(clock):
    said: list[str] = []
    bar = LineBar(1000, label="evaluating", unit_name="review", every_seconds=60, log=said.append)
    for done in range(100, 1001, 100):
        clock.now += 20
        bar.update(done)
    bar.update(1000)  # a second final update prints nothing more
    assert said == [
        "evaluating: 300/1,000 reviews (30%), 60 s",
        "evaluating: 600/1,000 reviews (60%), 120 s",
        "evaluating: 900/1,000 reviews (90%), 180 s",
        "evaluating: 1,000/1,000 reviews, 200 s",
    ]


def test_line_bar_without_its_end_line(clock):
    said: list[str] = []
    bar = LineBar(3, label="epoch 1/1", every_seconds=0, log=said.append, end_line=False)
    bar.add(1, [("loss", 2.0)])
    bar.add(2, [("loss", 2.0)])
    assert said == []


def test_progress_bar_choice(monkeypatch):
    assert console.progress_bar(5, label="x", verbose=0) is None
    assert isinstance(console.progress_bar(5, label="x", verbose=1), LineBar)
    assert console.progress_bar(5, label="x", verbose=2, log_seconds=9).every_seconds == 0
    monkeypatch.setattr(sys, "stdout", _Tty())
    assert type(console.progress_bar(5, label="x", verbose=1)).__name__ == "Progbar"


_TRAIN = "import sys; from textvae.cli import train_main; sys.exit(train_main(sys.argv[1:]))"


@pytest.mark.slow
def test_a_run_logged_to_a_file_reads_as_lines(tmp_path: Path, small_store):
    """stdout and stderr redirected to one file, as ``textvae-train ... > log 2>&1``: no
    carriage return, no escape code, a few kB; a line per step here (``--log-seconds`` tiny),
    and the last line names latents.png and the command to try next."""
    store = small_store
    out = tmp_path / "run"
    tiny = [a for a in TINY_TRAIN_ARGS if a not in ("--verbose", "0")]
    argv = ["--data", store.path, "--out", str(out), *tiny, "--epochs", "2"]
    argv += ["--verbose", "1", "--log-seconds", "0.000001", "--run-eagerly"]
    log = tmp_path / "train.log"
    with log.open("wb") as sink:
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN, *argv],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=600,
            env={k: v for k, v in os.environ.items() if k != LOG_LEVEL_ENV},  # as a user's shell
        )
    text = log.read_bytes()
    assert done.returncode == 0, text.decode(errors="replace")
    assert b"\r" not in text and b"\x1b" not in text and b"\b" not in text, text[:2000]
    assert len(text) < 20_000, len(text)
    lines = text.decode().splitlines()
    assert any(line.startswith("epoch 1/2: step 1/") for line in lines), lines
    assert any(line.startswith("epoch 2/2: ") and " steps in " in line for line in lines), lines
    assert any(line.startswith("evaluating: ") for line in lines), lines
    last = lines[-1]
    assert last.startswith("done: ") and f"textvae-sample prior {out} --n 5" in last, last
    assert ("latents.png" in last) and ((out / "latents.png").exists() == ("see " in last)), last


def test_units_in_the_plural_and_no_line_for_the_last_step(clock):
    said: list[str] = []
    LineBar(2, label="evaluating", unit_name="batch", log=said.append).update(2)
    lines = ProgressLines(every_seconds=1, log=said.append)
    lines.set_params({"epochs": 1, "steps": 2})
    lines.on_epoch_begin(0)
    for batch in range(2):
        clock.now += 5
        lines.on_train_batch_end(batch, {})
    assert said[0] == "evaluating: 2/2 batches, 0.0 s"
    assert [line.split(",")[0] for line in said[1:]] == ["epoch 1/1: step 1/2 (50%)"]
