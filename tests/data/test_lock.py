"""Concurrent writers and readers of one store path, and a disk that fills during an ingest.

The builds under test run in real separate processes (``python -c``) that pause at their last
progress report, the moment before ``complete`` is written, until the test lets them go.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, ingest_main
from textvae.data import StoreSpec, TokenStore, build_store, open_corpus
from textvae.data.lock import LockOwner, StoreLock, lock_path
from textvae.errors import (
    IncompleteStoreError,
    StoreExistsError,
    StoreLockedError,
    StoreNotFoundError,
    TextVAEError,
)

ARGS = ["--vocab", "12", "--max-len", "16", "--chunk-rows", "8", "--quiet"]
START_S = 60

# Builds a store like ingest_main with ARGS, pausing after its last rows (test split, 11 rows)
# until the file `go` exists: the store then has every array but not yet `complete`.
BUILDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from textvae.data import build_store, open_corpus

    corpus, store, started, go = sys.argv[1:5]

    def progress(stage, count):
        if stage == "test" and count == 11:
            Path(started).touch()
            deadline = time.monotonic() + 60
            while not Path(go).exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    build_store(store, open_corpus(corpus), vocab_size=12, max_len=16, chunk_rows=8,
                progress=progress)
    """
)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _start_builder(corpus: Path, store: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A build of ``store`` in another process, paused before ``complete``; returns it and the
    file that lets it finish."""
    started, go = tmp_path / "started", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(corpus), str(store), str(started), str(go)]
    )
    deadline = time.monotonic() + START_S
    while not started.exists():
        if proc.poll() is not None:
            pytest.fail(f"the builder exited with code {proc.returncode} before pausing")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the builder did not reach its pause in {START_S} s")
        time.sleep(0.02)
    return proc, go


def _assert_same_store(a: TokenStore, b: TokenStore) -> None:
    for split in a.splits:
        np.testing.assert_array_equal(a.read(split, slice(None)), b.read(split, slice(None)))
        np.testing.assert_array_equal(a.labels(split), b.labels(split))


def test_second_ingest_is_refused_and_readers_wait(tmp_path, corpus_dir, small_store, capsys):
    store = tmp_path / "busy.zarr"
    proc, go = _start_builder(corpus_dir, store, tmp_path)
    try:
        owner = f"pid {proc.pid} on {socket.gethostname()}, started "
        # A reader meets every array written but no `complete`: refused, and told why.
        with pytest.raises(IncompleteStoreError, match=f"still being built \\({owner}"):
            TokenStore.open(store)
        # A second ingest, with or without --overwrite, is refused naming the first.
        for extra in ([], ["--overwrite"]):
            assert ingest_main([str(corpus_dir), str(store), *ARGS, *extra]) == EXIT_USER_ERROR
            line = _one_error_line(capsys)
            assert f"{store} is being built by another ingest ({owner}" in line
            assert str(lock_path(str(store))) in line
        go.touch()
        assert proc.wait(timeout=START_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The first build was not disturbed, and its lock is gone.
    _assert_same_store(TokenStore.open(store), small_store)
    assert not Path(lock_path(str(store))).exists()


def test_killed_ingest_lock_is_taken_over_with_a_note(tmp_path, corpus_dir, small_store, capsys):
    store = tmp_path / "killed.zarr"
    proc, _ = _start_builder(corpus_dir, store, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lock = Path(lock_path(str(store)))
    assert lock.exists()  # kill -9 leaves its lock, and a store without `complete`
    with pytest.raises(IncompleteStoreError, match="interrupted"):
        TokenStore.open(store)
    assert ingest_main([str(corpus_dir), str(store), *ARGS]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"note: took over the lock {lock} of an ingest that is no longer running " in err
    assert f"(pid {proc.pid} on {socket.gethostname()}" in err
    assert "already exists" in err and "--overwrite" in err
    assert ingest_main([str(corpus_dir), str(store), *ARGS, "--overwrite"]) == 0
    _assert_same_store(TokenStore.open(store), small_store)
    assert not lock.exists()


def test_lock_of_another_host_is_never_taken(tmp_path, corpus_dir):
    store = tmp_path / "s.zarr"
    lock = Path(lock_path(str(store)))
    record = {"pid": 1, "host": "elsewhere.example", "started": "2026-01-01T00:00:00+00:00"}
    lock.write_text(json.dumps(record))
    with pytest.raises(StoreLockedError) as exc:
        build_store(store, open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16))
    assert isinstance(exc.value, BlockingIOError) and isinstance(exc.value, TextVAEError)
    message = str(exc.value)
    assert "pid 1 on elsewhere.example, started 2026-01-01T00:00:00+00:00" in message
    assert f"delete {lock}" in message
    assert json.loads(lock.read_text()) == record and not store.exists()


def test_foreign_lock_file_is_refused(tmp_path, corpus_dir):
    store = tmp_path / "s.zarr"
    Path(lock_path(str(store))).write_text("not json")
    with pytest.raises(StoreLockedError, match="is not a textvae lock"):
        build_store(store, open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16))


def test_lock_is_released_however_the_build_ends(tmp_path, corpus_dir, small_store):
    lock = Path(lock_path(small_store.path))
    with pytest.raises(StoreExistsError):
        build_store(small_store.path, open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16))
    assert not lock.exists()

    def interrupt(stage: str, count: int) -> None:
        if stage == "train":
            raise KeyboardInterrupt

    store = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        build_store(
            store, open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16), progress=interrupt
        )
    assert not Path(lock_path(str(store))).exists() and not store.exists()


def test_store_lock_in_one_process(tmp_path):
    path = str(tmp_path / "s.zarr")
    notes: list[str] = []
    with StoreLock(path, log=notes.append) as held:
        record = json.loads(Path(held.lock_path).read_text())
        assert LockOwner(record["pid"], record["host"], record["started"]).is_alive() is True
        assert record["pid"] == os.getpid() and record["store"] == path
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            StoreLock(path).acquire()  # held by a live process: this one
    assert not Path(held.lock_path).exists() and notes == []


# -- a disk that fills ----------------------------------------------------------------------------
FILE_SIZE_LIMIT = 4096  # bytes: above every metadata file and lock, below a chunk of tokens
LIMITED_INGEST = textwrap.dedent(
    f"""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit raises EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_LIMIT}, {FILE_SIZE_LIMIT}))
    from textvae.cli import ingest_main
    sys.exit(ingest_main(sys.argv[1:]))
    """
)


def test_disk_full_during_ingest(tmp_path, wordy_corpus):
    store = tmp_path / "full.zarr"
    argv = [str(wordy_corpus), str(store), "--vocab", "500", "--max-len", "64"]
    argv += ["--chunk-rows", "128", "--quiet"]
    run = subprocess.run(
        [sys.executable, "-c", LIMITED_INGEST, *argv], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == EXIT_USER_ERROR, run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith(f"error: cannot write the store at {store} (")
    assert "File too large" in line and "the disk is full or a size limit was reached" in line
    # Nothing is left that opens as a store, and no lock.
    assert not store.exists() and not Path(lock_path(str(store))).exists()
    with pytest.raises(StoreNotFoundError):
        TokenStore.open(store)
    # The same ingest without the limit succeeds: the limit, not the corpus, stopped it.
    assert ingest_main(argv) == 0
    assert TokenStore.open(store).num_rows("train") == 300


def test_resolve_store_names_the_build_in_progress(tmp_path, corpus_dir):
    from textvae.data import resolve_store

    store = tmp_path / "cached.zarr"
    proc, go = _start_builder(corpus_dir, store, tmp_path)
    try:
        with pytest.raises(IncompleteStoreError, match=f"still being built \\(pid {proc.pid} "):
            resolve_store(corpus_dir, vocab_size=12, max_len=16, store_path=store, log=print)
        go.touch()
        assert proc.wait(timeout=START_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs: list[str] = []
    resolve_store(corpus_dir, vocab_size=12, max_len=16, store_path=store, log=logs.append)
    assert logs[-1].startswith(f"using the store {store}")
