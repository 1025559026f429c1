"""``--overwrite`` that loses nothing: the new store is built beside the old one and swapped in
only when complete; a failed overwrite leaves the old store byte for byte as it was, and says so.
Also: a store path whose parent cannot be written is one line (exit 2) in every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs
from test_lock import LIMITED_INGEST  # an ingest under a file-size limit (a disk that fills)

from textvae.cli import EXIT_USER_ERROR, ingest_main, sample_main, train_main, verify_main
from textvae.data import StoreSpec, TokenStore, build_store, open_corpus
from textvae.data.lock import lock_path
from textvae.data.swap import NEW, OLD, left_aside, sibling, swap_local
from textvae.errors import CorpusError, IncompleteStoreError, StoreExistsError
from textvae.testing import random_reviews, write_jsonl

SPEC = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
ARGS = ["--vocab", "12", "--max-len", "16", "--chunk-rows", "8", "--quiet"]


@pytest.fixture
def other_corpus(tmp_path, rng) -> Path:
    """Another corpus, so that a replaced store differs from the old one."""
    root = tmp_path / "other"
    write_jsonl(root / "o_train.jsonl", random_reviews(rng, 21))
    write_jsonl(root / "o_test.jsonl", random_reviews(rng, 5))
    return root


@pytest.fixture
def bad_corpus(tmp_path, rng) -> Path:
    """A valid train split, then a test split whose last line is not UTF-8: the build fails
    part way (the vocabulary comes from train only; train is written, then test fails)."""
    root = tmp_path / "bad"
    write_jsonl(root / "a_train.jsonl", random_reviews(rng, 30))
    write_jsonl(root / "a_test.jsonl", random_reviews(rng, 5))
    with (root / "a_test.jsonl").open("ab") as f:
        f.write(b'{"text": "caf\xe9 latin-1", "label": 1}\n')
    return root


def _checksums(root: Path) -> dict[str, str]:
    """The sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _leftovers(store: Path) -> list[str]:
    return sorted(
        p.name
        for p in store.parent.iterdir()
        if p.name.startswith(store.name) and p.name != store.name
    )


def _one_line(text: str) -> str:
    assert text.count("\n") == 1 and text.startswith("error: "), text
    assert "Traceback" not in text
    return text


# -- local: a failed overwrite keeps the old store ------------------------------------------------


def test_overwrite_past_a_file_size_limit_keeps_the_old_store(tmp_path, corpus, wordy_corpus):
    # The reproduction: a valid store, then --overwrite under RLIMIT_FSIZE that the
    # new build exceeds. Before: exit 2 and the old store gone.
    store = tmp_path / "s.zarr"
    assert ingest_main([str(corpus), str(store), *ARGS]) == 0
    before = _checksums(store)
    argv = [str(wordy_corpus), str(store), "--vocab", "500", "--max-len", "64"]
    argv += ["--chunk-rows", "128", "--quiet", "--overwrite"]
    run = subprocess.run(
        [sys.executable, "-c", LIMITED_INGEST, *argv], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == EXIT_USER_ERROR, run.stderr
    line = _one_line(run.stderr)
    assert "File too large" in line and f"the store at {store} was kept as it was" in line
    assert _checksums(store) == before
    assert _leftovers(store) == []  # no new build, no lock
    assert TokenStore.open(store).num_rows("train") == 37
    # Without the limit the same overwrite replaces it.
    assert ingest_main(argv) == 0
    assert TokenStore.open(store).num_rows("train") == 300 and _leftovers(store) == []


def test_overwrite_with_a_bad_corpus_keeps_the_old_store(tmp_path, corpus, bad_corpus, capsys):
    store = tmp_path / "s.zarr"
    assert ingest_main([str(corpus), str(store), *ARGS]) == 0
    before = _checksums(store)
    capsys.readouterr()
    assert ingest_main([str(bad_corpus), str(store), *ARGS, "--overwrite"]) == EXIT_USER_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "is not UTF-8" in line and f"the store at {store} was kept as it was" in line
    assert _checksums(store) == before and _leftovers(store) == []
    with pytest.raises(CorpusError, match="was kept as it was"):  # the API says it too
        build_store(store, open_corpus(bad_corpus), SPEC, overwrite=True, workers=2)
    assert _checksums(store) == before and _leftovers(store) == []


def test_interrupted_overwrite_keeps_the_old_store(tmp_path, corpus, other_corpus):
    store = tmp_path / "s.zarr"
    build_store(store, open_corpus(corpus), SPEC)
    before = _checksums(store)

    def interrupt(stage: str, done: int) -> None:
        if stage == "train" and done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_store(store, open_corpus(other_corpus), SPEC, overwrite=True, progress=interrupt)
    assert _checksums(store) == before and _leftovers(store) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_overwrite_that_succeeds_replaces_the_store(tmp_path, corpus, other_corpus, exchange):
    store = tmp_path / "s.zarr"
    build_store(store, open_corpus(corpus), SPEC)
    new = build_store(sibling(str(store)), open_corpus(other_corpus), SPEC)
    expected = _checksums(Path(new.path))
    swap_local(str(store), new.path, exchange=exchange)
    assert _checksums(store) == expected and _leftovers(store) == []
    assert TokenStore.open(store).num_rows("train") == 21
    # and through build_store, with the lock, in this process or with workers
    for workers in (1, 2):
        build_store(store, open_corpus(corpus), SPEC, overwrite=True, workers=workers)
        assert TokenStore.open(store).num_rows("train") == 37 and _leftovers(store) == []


# -- local: a crash between the swap's steps ------------------------------------------------------
def _two_stores(tmp_path: Path, corpus: Path, other_corpus: Path) -> tuple[Path, Path]:
    store = tmp_path / "s.zarr"
    build_store(store, open_corpus(corpus), SPEC)
    new = Path(sibling(str(store), pid=999999))
    build_store(new, open_corpus(other_corpus), SPEC)
    return store, new


def test_crash_between_the_two_renames_puts_the_old_store_back(tmp_path, corpus, other_corpus):
    # Where the exchange is not supported: old renamed aside, then killed before the new one
    # was renamed into place. Nothing is at the store's path.
    store, _ = _two_stores(tmp_path, corpus, other_corpus)
    before = _checksums(store)
    aside = sibling(str(store), OLD, pid=999999)
    store.rename(aside)
    assert left_aside(str(store)) == aside  # what a "no store" message can name
    notes: list[str] = []
    with pytest.raises(StoreExistsError):  # the next ingest into the path recovers first
        build_store(store, open_corpus(other_corpus), SPEC, log=notes.append)
    assert _checksums(store) == before and _leftovers(store) == []
    assert any("put the store back" in note for note in notes), notes
    assert left_aside(str(store)) is None
    TokenStore.open(store)


def test_crash_after_the_exchange_deletes_the_old_store(tmp_path, corpus, other_corpus, capsys):
    # Killed after the exchange, before deleting the old store (now at the sibling's name):
    # the path holds the new store, which opens; the next ingest removes the leftover.
    store, new = _two_stores(tmp_path, corpus, other_corpus)
    after = _checksums(new)
    swap_local(str(store), str(new))  # deletes the old one: put a copy back as a kill would
    shutil.copytree(tmp_path / "s.zarr", new)
    assert TokenStore.open(store).num_rows("train") == 21
    assert ingest_main([str(corpus), str(store), *ARGS]) == EXIT_USER_ERROR  # exists
    assert "already exists" in capsys.readouterr().err
    assert _checksums(store) == after and _leftovers(store) == []


def test_an_unfinished_new_build_is_removed_by_the_next_ingest(tmp_path, corpus, other_corpus):
    # Killed (-9) while building the new store: the old one is untouched and opens; the half
    # build is deleted by the next ingest, which then replaces the store.
    store, new = _two_stores(tmp_path, corpus, other_corpus)
    before = _checksums(store)
    meta = json.loads((new / "zarr.json").read_text())
    meta["attributes"]["textvae"]["complete"] = False
    (new / "zarr.json").write_text(json.dumps(meta))
    (tmp_path / "s.zarr.textvae-new-1").mkdir()  # empty: killed as it started
    (tmp_path / "s.zarr.textvae-new-notes").mkdir()  # not a leftover's name: never touched
    assert _checksums(store) == before and TokenStore.open(store).num_rows("train") == 37
    build_store(store, open_corpus(other_corpus), SPEC, overwrite=True)
    assert _leftovers(store) == ["s.zarr.textvae-new-notes"]
    assert TokenStore.open(store).num_rows("train") == 21


# -- s3:// ---------------------------------------------------------------------------------------
def _objects(fs: s3fs.S3FileSystem, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {key[len(prefix) :]: fs.cat_file(key) for key in sorted(fs.find(prefix))}


def _siblings(fs: s3fs.S3FileSystem, bucket_name: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(p for p in fs.ls(bucket_name, detail=False) if NEW in p or OLD in p)


@pytest.mark.timeout(90)
def test_s3_failed_overwrite_keeps_the_old_store(bucket, s3_env, corpus, bad_corpus, capsys):
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    url = f"s3://{bucket}/x.zarr"
    assert ingest_main([str(corpus), url, *ARGS]) == 0
    before = _objects(fs, f"{bucket}/x.zarr")
    capsys.readouterr()
    assert ingest_main([str(bad_corpus), url, *ARGS, "--overwrite"]) == EXIT_USER_ERROR
    assert f"the store at {url} was kept as it was" in _one_line(capsys.readouterr().err)
    assert _objects(fs, f"{bucket}/x.zarr") == before and _siblings(fs, bucket) == []
    assert TokenStore.open(url).num_rows("train") == 37


@pytest.mark.timeout(90)
def test_s3_overwrite_replaces_and_finishes_an_interrupted_copy(
    bucket,
    s3_env,
    corpus,
    other_corpus,
    tmp_path,
):
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    url = f"s3://{bucket}/x.zarr"
    build_store(url, open_corpus(corpus), SPEC)
    build_store(url, open_corpus(other_corpus), SPEC, overwrite=True)
    replaced = _objects(fs, f"{bucket}/x.zarr")
    assert TokenStore.open(url).num_rows("train") == 21 and _siblings(fs, bucket) == []
    local = tmp_path / "local.zarr"
    build_store(local, open_corpus(other_corpus), SPEC)  # the same store, built locally
    assert {k.lstrip("/"): v for k, v in replaced.items()} == {
        k: (local / k).read_bytes() for k in _checksums(local)
    }

    # A copy into place cut short: the root marked incomplete, part of the old objects gone,
    # the complete new store still under its sibling prefix.
    build_store(url, open_corpus(corpus), SPEC, overwrite=True)
    new_url = sibling(url, pid=999999)
    build_store(new_url, open_corpus(other_corpus), SPEC)
    root = json.loads(fs.cat_file(f"{bucket}/x.zarr/zarr.json"))
    root["attributes"]["textvae"]["complete"] = False
    fs.pipe_file(f"{bucket}/x.zarr/zarr.json", json.dumps(root).encode())
    fs.rm(sorted(fs.find(f"{bucket}/x.zarr/train"))[:2])
    with pytest.raises(IncompleteStoreError):  # never read as a mix of two stores
        TokenStore.open(url)
    notes: list[str] = []
    with pytest.raises(StoreExistsError):  # the next ingest finishes the copy first
        build_store(url, open_corpus(corpus), SPEC, log=notes.append)
    assert any("finished copying" in note for note in notes), notes
    assert _objects(fs, f"{bucket}/x.zarr") == replaced and _siblings(fs, bucket) == []
    assert TokenStore.open(url).num_rows("train") == 21


# -- a parent that cannot be written (as root too) ------------------------------------------------
#: Paths no process can create, root included: /proc takes no new files, /sys refuses them.
UNWRITABLE = ["/proc/textvae-test.zarr", "/sys/textvae-test.zarr"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and /sys are Linux's")
@pytest.mark.parametrize("store", UNWRITABLE)
def test_unwritable_parent_is_one_line_in_every_command(store, corpus, tmp_path, capsys):
    assert not os.path.exists(store)
    assert ingest_main([str(corpus), store, *ARGS]) == EXIT_USER_ERROR
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write the store at {store} (cannot create {lock_path(store)}" in line
    assert verify_main([store]) == EXIT_USER_ERROR
    assert f"no token store at {store}" in _one_line(capsys.readouterr().err)
    out = tmp_path / "run"
    train = ["--data", str(corpus), "--vocab-size", "12", "--max-len", "16", "--epochs", "1"]
    assert train_main([*train, "--store", store, "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"error: cannot write the store at {store}" in err
    run_out = store.replace(".zarr", "-run")
    assert train_main([*train, "--out", run_out]) == EXIT_USER_ERROR
    assert f"cannot write to --out {run_out}" in _one_line(capsys.readouterr().err)
    assert sample_main(["prior", run_out]) == EXIT_USER_ERROR  # reads only
    assert f"{run_out}/vocab.json does not exist" in _one_line(capsys.readouterr().err)
