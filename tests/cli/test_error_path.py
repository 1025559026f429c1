"""One error path: a textvae error raised inside the input pipeline reaches the user as the same
one line, exit code 2, as when it is raised directly (issue 21).

The damage is real: bytes of chunk files flipped on disk (their crc32c check fails, so reading
them raises StoreCorruptError) after the Sequence is built, the way a disk or a copy damages a
store while training runs. Only the moment is arranged: a callback flips them when training
begins, past every read the start-up does.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import textvae.training.trainer as trainer
from textvae.batching import OneHotSequence
from textvae.batching.adapters import as_numpy_iterator, as_tf_dataset
from textvae.cli import EXIT_USER_ERROR, train_main
from textvae.data import StoreSpec, build_store, open_corpus
from textvae.errors import StoreCorruptError, StoreNotFoundError, TextVAEError, unwrap
from textvae.testing import TINY_TRAIN_ARGS, random_reviews, write_jsonl
from textvae.training.callbacks import EpochSync

ROOT = Path(__file__).resolve().parents[2]
ROWS, CHUNK_ROWS = 240, 8


def flip_chunks(store_path: str | os.PathLike[str], name: str = "tokens") -> list[Path]:
    """Flip bytes in the middle of every chunk file of ``train/<name>``; the files flipped."""
    files = sorted(p for p in (Path(store_path) / "train" / name / "c").rglob("*") if p.is_file())
    for path in files:
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        for i in range(max(mid - 16, 4), min(mid + 16, len(data) - 4)):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    return files


#: TensorFlow's C++ start-up lines (absl writes them before its logging starts): under
#: KERAS_BACKEND=jax, `keras.utils.set_random_seed` imports TensorFlow to seed it too.
_TF_STARTUP = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the )")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and not _TF_STARTUP.match(line)]


@pytest.fixture
def store(tmp_path, rng):
    """A store built from text (the VAE needs textvae's ids): 30 chunks of train rows."""
    source = tmp_path / "corpus"
    write_jsonl(source / "c_train.jsonl", random_reviews(rng, ROWS))
    write_jsonl(source / "c_test.jsonl", random_reviews(rng, 24))
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=CHUNK_ROWS)
    return build_store(tmp_path / "s.zarr", open_corpus(source), spec)


def _damage_when_training_begins(monkeypatch, store_path: str) -> None:
    class DamagingEpochSync(EpochSync):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            flip_chunks(store_path)

    monkeypatch.setattr(trainer, "EpochSync", DamagingEpochSync)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
def test_chunk_damaged_during_training_is_one_line_on_tensorflow(
    store, tmp_path, monkeypatch, capsys, eager
):
    _damage_when_training_begins(monkeypatch, store.path)
    argv = ["--data", store.path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS]
    code = train_main([*argv, "--epochs", "2", *(["--run-eagerly"] if eager else [])])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "train/tokens" in lines[0], err
    assert "is damaged (checksum mismatch)" in lines[0]
    assert "Traceback" not in err and "PyFunc" not in err


def test_as_tf_dataset_error_unwraps_to_the_store_error(store):
    import tensorflow as tf

    seq = OneHotSequence(store, "train", batch_size=8, workers=2)
    dataset = as_tf_dataset(seq)
    flip_chunks(store.path)
    with pytest.raises(tf.errors.OpError) as info:
        for _ in dataset:
            pass
    direct = None
    try:
        list(as_numpy_iterator(OneHotSequence(store, "train", batch_size=8)))
    except StoreCorruptError as err:
        direct = err
    found = unwrap(info.value)
    assert type(found) is StoreCorruptError and isinstance(found, OSError)
    assert "train/tokens" in str(found) and "\n" not in str(found)
    assert (
        direct is not None and str(found).split(" holding")[0] == str(direct).split(" holding")[0]
    )


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_keras_pydataset_workers_on_tensorflow_unwrap(store, processes):
    """Keras' own PyDataset adapter (its enqueuer, thread or process workers) under ``fit``."""
    import keras

    seq = OneHotSequence(
        store, "train", 8, inputs="ids", outputs="onehot", workers=2,
        use_multiprocessing=processes,
    )  # fmt: skip
    ids = keras.Input((16,), dtype="int32", name="ids")
    hidden = keras.layers.Embedding(12, 4)(ids)
    outputs = {"reconstruction": keras.layers.Dense(12, "softmax", name="reconstruction")(hidden)}
    model = keras.Model({"ids": ids}, outputs)
    model.compile("adam", "categorical_crossentropy")

    class Damage(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            flip_chunks(store.path)

    with pytest.raises(Exception) as info:
        model.fit(seq, epochs=2, verbose=0, callbacks=[Damage()])
    found = unwrap(info.value)
    assert type(found) is StoreCorruptError, info.value
    assert "train/tokens" in str(found) and "Traceback" not in str(found)


def test_direct_textvae_error_is_itself_and_a_bug_stays_a_bug():
    err = StoreNotFoundError("no store at x")
    assert unwrap(err) is err
    assert unwrap(ValueError("plain")) is None
    # A bug in textvae's own code while a textvae error was being handled keeps its traceback.
    try:
        try:
            raise StoreNotFoundError("handled")
        except StoreNotFoundError:
            raise KeyError("a bug")  # noqa: B904
    except KeyError as bug:
        assert unwrap(bug) is None
    # An explicit `raise ... from` a textvae error is a rewording of it.
    try:
        try:
            raise StoreNotFoundError("the cause")
        except StoreNotFoundError as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as wrapped:
        assert str(unwrap(wrapped)) == "the cause"


def _formatted(error: BaseException) -> str:
    try:
        raise error
    except BaseException as raised:
        return "".join(traceback.format_exception(raised))


def test_worker_traceback_as_message_is_cleaned():
    # PyTorch's DataLoader workers re-raise `cls(f"Caught {cls} in DataLoader worker process
    # 0.\nOriginal {formatted traceback}")`: the class is kept, the message is a traceback.
    original = StoreCorruptError("s.zarr: the chunk of train/tokens holding rows 0-7 is damaged")
    wrapped = StoreCorruptError(
        "Caught StoreCorruptError in DataLoader worker process 0.\nOriginal " + _formatted(original)
    )
    found = unwrap(wrapped)
    assert type(found) is StoreCorruptError and str(found) == str(original)
    # Only the last exception of a worker's traceback counts.
    assert unwrap(RuntimeError(_formatted(original) + "\n" + _formatted(KeyError("x")))) is None


class Custom(TextVAEError, ValueError):
    """A textvae error whose constructor takes other arguments than the message."""

    def __init__(self, path, rows):
        super().__init__(f"{path}: rows {rows}")


Custom.__module__, Custom.__qualname__ = "textvae.errors", "Custom"


def test_a_textvae_subclass_with_its_own_arguments_is_rebuilt(monkeypatch):
    import textvae.errors as errors

    monkeypatch.setattr(errors, "Custom", Custom, raising=False)
    found = unwrap(RuntimeError(_formatted(Custom("p", 3))))
    assert type(found) is Custom and str(found) == "p: rows 3"


def test_chunk_damaged_during_training_is_one_line_on_jax(store, tmp_path):
    pytest.importorskip("jax")
    _run_backend(store, tmp_path, "jax")


def test_chunk_damaged_during_training_is_one_line_on_torch(store, tmp_path):
    pytest.importorskip("torch")
    _run_backend(store, tmp_path, "torch")


_SCRIPT = """
import os
import sys
from pathlib import Path
from textvae._startup import import_keras

import_keras()  # as the command does first: TensorFlow's start-up lines silenced
import textvae.training.trainer as trainer
from textvae.cli import train_main
from textvae.training.callbacks import EpochSync

{flip_chunks}

class DamagingEpochSync(EpochSync):
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        flip_chunks({store!r})

trainer.EpochSync = DamagingEpochSync
sys.exit(train_main({argv!r}))
"""


def _run_backend(store, tmp_path, backend: str) -> None:
    argv = ["--data", store.path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS, "--epochs", "2"]
    source = inspect.getsource(flip_chunks)
    script = _SCRIPT.format(flip_chunks=source, store=store.path, argv=argv)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    lines = _error_lines(done.stderr)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "train/tokens" in lines[0]
