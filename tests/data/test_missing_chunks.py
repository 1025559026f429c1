"""A chunk that should exist and does not is damage on every read, never fill values.

zarr reads a chunk with no file as the array's fill value: a deleted ``labels`` chunk would read
as -1 (unlabelled), a ``tokens`` chunk as padding, a ``lengths`` chunk as 0. Each array's chunk
is deleted in turn (as a disk, a partial copy or a sync tool loses a file) and every read path
must raise the one :class:`StoreCorruptError`: ``TokenStore``, ``OneHotSequence`` and
``textvae-train``. Truncated chunk files (caught by the checksum) and a store written before
checksums (where a missing ``labels`` chunk was an all -1 chunk zarr skipped) are here too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zarr.codecs import ZstdCodec

from textvae.batching import OneHotSequence
from textvae.cli import EXIT_USER_ERROR, train_main
from textvae.data import StoreSpec, TokenStore, build_store, ingest, open_corpus, verify_store
from textvae.data.chunks import chunk_key
from textvae.errors import StoreCorruptError, TextVAEError
from textvae.testing import TINY_TRAIN_ARGS, make_store

ARRAYS = ("tokens", "labels", "lengths")


def _chunk(store: TokenStore, split: str, name: str, k: int = -1) -> tuple[Path, int, int]:
    """The file of chunk ``k`` (default: the last) of ``split/name``, and its rows."""
    array = store.zarr_array(split, name)
    n, c = array.shape[0], array.chunks[0]
    k = k % -(-n // c)
    return Path(store.path) / chunk_key(array, k), k * c, min((k + 1) * c, n)


def _reader(store: TokenStore, name: str):
    return {"tokens": store.read, "labels": store.labels, "lengths": store.lengths}[name]


def _assert_names_the_chunk(err: BaseException, store: TokenStore, name: str, rows: str) -> None:
    message = str(err)
    assert isinstance(err, StoreCorruptError) and isinstance(err, OSError), type(err)
    assert "\n" not in message
    assert store.path in message and f"chunk of train/{name} holding rows {rows} " in message
    assert f"its file train/{name}/c/" in message and "is missing" in message
    assert "textvae-verify" in message and "textvae-ingest" in message
    assert "--overwrite" in message


@pytest.mark.parametrize("name", ARRAYS)
def test_store_reads_raise_for_a_missing_chunk(small_store, name):
    clean = _reader(small_store, name)("train", slice(None))
    path, start, stop = _chunk(small_store, "train", name)
    path.unlink()
    store = TokenStore.open(small_store.path)  # the metadata is intact: it opens
    read = _reader(store, name)
    rows = f"{start}-{stop - 1}"
    for selection in (slice(None), slice(start, stop), [stop - 1, 0], np.array([start])):
        with pytest.raises(StoreCorruptError) as exc:
            read("train", selection)
        _assert_names_the_chunk(exc.value, store, name, rows)
    # The open store that read before the file went sees it too (nothing listed at open).
    with pytest.raises(StoreCorruptError):
        _reader(small_store, name)("train", [start])
    if start > 0:  # rows of the other chunks read as before
        np.testing.assert_array_equal(read("train", slice(0, start)), clean[:start])
    (damage,) = verify_store(store.path).damaged
    assert (damage.name, damage.start, damage.stop) == (f"train/{name}", start, stop)
    assert damage.problem == f"its file {path.relative_to(store.path).as_posix()} is missing"


def test_every_missing_chunk_is_counted(tmp_path):
    store = make_store(tmp_path / "s.zarr", rows=40, chunk_rows=8)
    for k in (1, 3):
        _chunk(store, "train", "tokens", k)[0].unlink()
    with pytest.raises(StoreCorruptError, match=r"rows 8-15 .* \(and 1 more damaged chunks\)"):
        store.read("train", slice(None))
    np.testing.assert_array_equal(store.read("train", [0, 39]).shape, (2, 16))


def test_vocab_chunk_missing(small_store):
    (Path(small_store.path) / "vocab" / "c" / "0").unlink()
    store = TokenStore.open(small_store.path)
    with pytest.raises(StoreCorruptError, match=r"chunk of vocab holding ids 0-11 .*is missing"):
        store.token_strings  # noqa: B018


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("tokens", {}),
        ("labels", {}),  # the sentiment output
        ("lengths", {"sample_weight": "mask"}),
    ],
)
def test_sequence_raises_for_a_missing_chunk(small_store, name, options):
    path, start, stop = _chunk(small_store, "train", name)
    path.unlink()
    seq = OneHotSequence(small_store.path, "train", batch_size=64, shuffle=False, **options)
    with pytest.raises(StoreCorruptError) as exc:
        seq[0]
    _assert_names_the_chunk(
        exc.value, TokenStore.open(small_store.path), name, f"{start}-{stop - 1}"
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["tokens", "labels"])
def test_train_refuses_a_store_with_a_missing_chunk(small_store, tmp_path, capsys, name):
    """The arrays training reads (the text VAE uses no padding mask, so never ``lengths``:
    a missing ``lengths`` chunk fails every read of it, above, and verify)."""
    path, start, stop = _chunk(small_store, "train", name)
    path.unlink()
    argv = ["--data", small_store.path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS]
    assert train_main([*argv, "--epochs", "1"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"chunk of train/{name} holding rows {start}-{stop - 1} " in lines[0]
    assert "is missing" in lines[0] and "--overwrite" in lines[0]


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("keep", [0, 5, -1])
def test_a_truncated_chunk_is_damage(small_store, name, keep):
    path, start, _ = _chunk(small_store, "train", name, 0)
    data = path.read_bytes()
    path.write_bytes(data[: keep % len(data)])
    with pytest.raises(StoreCorruptError, match=f"chunk of train/{name} holding rows {start}-"):
        _reader(small_store, name)("train", slice(None))
    assert [d.name for d in verify_store(small_store.path).damaged] == [f"train/{name}"]


# -- stores written before checksums ------------------------------------------------------------
@pytest.fixture
def legacy_store(tmp_path, corpus_dir, monkeypatch) -> TokenStore:
    """A store written as before checksums: zstd only, all-fill chunks not written."""
    monkeypatch.setattr(ingest, "compressors", lambda: [ZstdCodec(level=3)])
    monkeypatch.setattr(ingest, "ARRAY_CONFIG", {"write_empty_chunks": False})
    store = build_store(
        tmp_path / "legacy.zarr",
        open_corpus(corpus_dir),
        StoreSpec(vocab_size=12, max_len=16, chunk_rows=8),
    )
    monkeypatch.undo()
    return store


def test_legacy_labels_chunk_missing_reads_as_unlabelled(legacy_store):
    """Before checksums zarr skipped all-fill chunks: a labels chunk of only -1 (unlabelled
    rows, a whole ``unsup`` split) had no file. Such a store still reads, and verifies ok."""
    path, start, stop = _chunk(legacy_store, "train", "labels")
    path.unlink()
    store = TokenStore.open(legacy_store.path)
    assert store.holes_allowed("train", "labels")
    assert (store.labels("train")[start:stop] == -1).all()
    assert verify_store(store.path).ok


@pytest.mark.parametrize("name", ["tokens", "lengths"])
def test_legacy_tokens_and_lengths_chunks_missing_are_damage(legacy_store, name):
    """Every row holds a start id or words, and a length >= 1: these chunks were never all
    fill value, so they were always written."""
    path, start, stop = _chunk(legacy_store, "train", name)
    path.unlink()
    store = TokenStore.open(legacy_store.path)
    assert not store.holes_allowed("train", name)
    with pytest.raises(StoreCorruptError) as exc:
        _reader(store, name)("train", slice(None))
    _assert_names_the_chunk(exc.value, store, name, f"{start}-{stop - 1}")
    assert not verify_store(store.path).ok


def test_new_stores_allow_no_holes(small_store):
    for split in small_store.splits:
        for name in ARRAYS:
            assert not small_store.holes_allowed(split, name)
    assert isinstance(StoreCorruptError("x"), TextVAEError)


# -- a store that lost its root zarr.json ---------------------------------------------------------
def test_a_store_without_its_root_metadata_is_called_damaged(small_store, tmp_path, capsys):
    from textvae.cli import verify_main
    from textvae.data import open_corpus, resolve_store
    from textvae.errors import StoreFormatError

    (Path(small_store.path) / "zarr.json").unlink()
    calls = {
        "TokenStore.open": lambda: TokenStore.open(small_store.path),
        "open_corpus": lambda: open_corpus(small_store.path),
        "resolve_store": lambda: resolve_store(
            small_store.path, vocab_size=12, max_len=16, store_path=tmp_path / "c.zarr"
        ),
        "verify_store": lambda: verify_store(small_store.path),
    }
    for what, call in calls.items():
        with pytest.raises(StoreFormatError) as exc:
            call()
        message = str(exc.value)
        assert "looks like a damaged token store" in message, what
        assert "no zarr.json at its root" in message and "train/zarr.json" in message
        assert "textvae-ingest" in message and "corpus layout" not in message
    assert not (tmp_path / "c.zarr").exists()  # nothing ingested from it
    assert verify_main([small_store.path]) == EXIT_USER_ERROR
    argv = ["--data", small_store.path, "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS]
    assert train_main(argv) == EXIT_USER_ERROR
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 2 and all("damaged token store" in ln for ln in lines), lines


def test_an_unknown_folder_is_still_an_unknown_layout(tmp_path):
    from textvae.data import open_corpus
    from textvae.errors import CorpusError

    (tmp_path / "notes" / "a").mkdir(parents=True)
    (tmp_path / "notes" / "a" / "readme.txt").write_text("hello")
    with pytest.raises(CorpusError, match="unknown corpus layout"):
        open_corpus(tmp_path / "notes")
