"""How the fuzz runs what it draws, and what it counts (README, "Faults tried").

The property of every fuzz test in this folder: the outcome is success or a
:class:`~textvae.errors.TextVAEError` (through a command: exit code 2 and one ``error:`` line on
stderr), never another exception, and a bad input never leaves a store that opens as valid.
Training is never run: ``textvae-train`` is followed up to the point where its configuration is
checked, the run folder prepared and the data opened, and stopped where the model would be built
(:func:`stop_at_model`).

Each ``test_fuzz_*.py`` file draws one kind of input and keeps, beside its fuzz, what the fuzz
found as plain tests (each was a traceback, a silent loss, or a wrong success before the fix; a
derandomized fuzz of a few dozen examples may not draw it again).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np

from textvae.cli import EXIT_USER_ERROR
from textvae.data import StoreSpec

# --------------------------------------------------------------------------------------------
# Counting what the fuzz saw

TALLY: dict[str, Counter] = {"tried": Counter(), "outcomes": Counter(), "errors": Counter()}
_NUMBER = re.compile(r"-?\d[\d_.e+]*|nan|inf")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\([^()]*\)|/\S*|s3://\S*|file://\S*")


_PREFIX = re.compile(r"^(textvae-[a-z]+( [a-z]+)?: )?(error: )?")
_VALUES = re.compile(
    r"( \(see textvae-[a-z]+ --help\)$| Received: .*$|(?<=invalid choice: ).*$|"
    r"(?<=invalid int value: ).*$|(?<=invalid float value: ).*$|"
    r"(?<=unrecognized arguments: ).*$)"
)


def _kind(message: str) -> str:
    """An error message with its values (received values, numbers, paths, quoted text) taken
    out: the same check failing on two values counts as one distinct error."""
    message = _VALUES.sub("", _PREFIX.sub("", message))
    return _NUMBER.sub("N", _QUOTED.sub("_", message))[:100]


def tally(test: str, outcome: str, message: str = "") -> None:
    """Count one input of ``test`` and its outcome (and the error, its values taken out)."""
    TALLY["tried"][test] += 1
    TALLY["outcomes"][f"{test}: {outcome}"] += 1
    if message:
        TALLY["errors"][_kind(message)] += 1


# --------------------------------------------------------------------------------------------
# Running a command in process

_ERROR_LINE = re.compile(r"^(textvae-[a-z]+( [a-z]+)?: )?error: \S")
_PROGRESS_LINE = re.compile(r"^\w+: [\d,]+ reviews \(")


class Reached(Exception):
    """Raised where textvae-train would build the model: the fuzz stops there."""


def _first_batches_then_stop(config, store, steps_per_epoch):
    """Stands in for ``textvae.training.trainer._new_model``: the training Sequence serves its
    first and last batches as the run configured them (batch size, targets, dtype), then the
    fuzz stops before any model is built."""
    from textvae.training.run_data import _train_sequence

    seq = _train_sequence(config, store)
    seq[0]
    seq[len(seq) - 1]
    raise Reached


def stop_at_model():
    """Patch textvae-train to stop (raise :class:`Reached`) where it would build the model."""
    return mock.patch("textvae.training.trainer._new_model", _first_batches_then_stop)


def run_command(main: Callable, argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``main(argv)`` run in ``cwd``; any exception other
    than SystemExit propagates (a traceback is the bug the fuzz looks for)."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def check_outcome(test: str, code: int, err: str) -> str:
    """Success (0), or exit code 2 with exactly one ``error:`` line, the last one on stderr.
    Returns the error line ("" on success)."""
    assert "Traceback" not in err, err
    if code == 0:
        tally(test, "ok")
        return ""
    assert code == EXIT_USER_ERROR, (code, err)
    lines = err.strip().splitlines()
    assert lines and _ERROR_LINE.match(lines[-1]), err
    # Before the error: nothing but ingest progress lines ("vocab: 21 reviews (0.0 s, ...)").
    assert all(_PROGRESS_LINE.match(line) for line in lines[:-1]), err
    tally(test, "error", lines[-1])
    return lines[-1]


@contextlib.contextmanager
def example_dir(root: Path) -> Iterator[Path]:
    """A fresh folder under ``root`` for one example, removed after it."""
    path = Path(tempfile.mkdtemp(dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The small world every fuzz test draws from: a corpus and a store, built once


class World:
    """A corpus of 21 train and 6 test reviews and its store (vocab 12, max_len 16, chunks of 8
    rows) under ``root``, and a cache folder for ``TEXTVAE_CACHE``."""

    def __init__(self, root: Path) -> None:
        from textvae.data import build_store
        from textvae.data.discover import open_corpus
        from textvae.testing import random_reviews, write_jsonl

        rng = np.random.default_rng(7)
        self.root = root
        self.corpus = root / "corpus"
        write_jsonl(self.corpus / "c_train.jsonl", random_reviews(rng, 21))
        write_jsonl(self.corpus / "c_test.jsonl", random_reviews(rng, 6))
        self.store = root / "store.zarr"
        build_store(
            self.store,
            open_corpus(self.corpus),
            spec=StoreSpec(vocab_size=12, max_len=16, chunk_rows=8),
        )
        self.cache = root / "cache"


def make_path(kind: str, where: Path, world: World) -> str:
    """A path of one kind, made in ``where`` (a fresh folder) when it needs to exist."""
    where.mkdir(parents=True, exist_ok=True)
    if kind == "fresh":
        return str(where / "new.zarr")
    if kind == "store":
        shutil.copytree(world.store, where / "copy.zarr")
        return str(where / "copy.zarr")
    if kind == "corpus":
        return str(world.corpus)
    if kind == "corpus-file":
        return str(world.corpus / "c_train.jsonl")
    if kind == "missing":
        return str(where / "missing" / "x")
    if kind == "a-file":
        (where / "a-file").write_bytes(b"\x00\xffnot a store")
        return str(where / "a-file")
    if kind == "under-a-file":
        (where / "blocker").write_text("x")
        return str(where / "blocker" / "s.zarr")
    if kind == "empty-dir":
        (where / "empty").mkdir()
        return str(where / "empty")
    if kind == "folder-of-files":
        (where / "mine").mkdir()
        (where / "mine" / "notes.txt").write_text("keep me")
        return str(where / "mine")
    if kind == "not-a-group":
        (where / "bad.zarr").mkdir()
        (where / "bad.zarr" / "zarr.json").write_bytes(b"{not json")
        return str(where / "bad.zarr")
    if kind == "unwritable":
        return "/proc/textvae-fuzz/s.zarr"
    if kind == "empty":
        return ""
    if kind == "file-url":
        return "file://" + str(where / "u.zarr")
    if kind == "odd-name":
        return str(where / "a b\tc ü -x.zarr")
    raise AssertionError(kind)


PATH_KINDS = [
    "fresh",
    "store",
    "corpus",
    "corpus-file",
    "missing",
    "a-file",
    "under-a-file",
    "empty-dir",
    "folder-of-files",
    "not-a-group",
    "unwritable",
    "empty",
    "file-url",
    "odd-name",
]
