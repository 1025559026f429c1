"""Checksummed stores: damaged chunks are errors that name their rows; textvae-verify finds them.

Damage is made the way a disk or a copy makes it: bytes of a chunk file flipped in place, a chunk
file deleted. A store written the old way (zstd only, no checksum) is built by the real builder
with the checksum codec taken out, and must still open and read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from textvae.cli import EXIT_DAMAGED, EXIT_USER_ERROR, verify_main
from textvae.data import StoreSpec, TokenStore, build_store, ingest, open_corpus, verify_store
from textvae.data.format import array_codecs, has_checksum
from textvae.errors import StoreCorruptError, StoreNotFoundError, TextVAEError

CHUNK_ROWS = 8  # the small_store fixture's: train rows 16-23 are chunk 2


def _chunk_file(store: TokenStore, split: str, name: str, k: int) -> Path:
    suffix = f"c/{k}/0" if name == "tokens" else f"c/{k}"
    return Path(store.path) / split / name / suffix


def flip_bytes(path: Path, count: int = 64) -> None:
    """XOR ``count`` bytes in the middle of a file (at most all but its first and last 4)."""
    data = bytearray(path.read_bytes())
    count = min(count, len(data) - 8)
    start = (len(data) - count) // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]


@pytest.fixture
def legacy_store(tmp_path, corpus_dir, monkeypatch) -> TokenStore:
    """A format-1 store written as before checksums: zstd only, empty chunks not written."""
    monkeypatch.setattr(ingest, "compressors", lambda: [ZstdCodec(level=3)])
    monkeypatch.setattr(ingest, "ARRAY_CONFIG", {"write_empty_chunks": False})
    store = build_store(
        tmp_path / "legacy.zarr",
        open_corpus(corpus_dir),
        StoreSpec(vocab_size=12, max_len=16, chunk_rows=CHUNK_ROWS),
    )
    monkeypatch.undo()
    return store


def test_every_array_of_a_new_store_has_a_checksum(small_store):
    group = zarr.open_group(small_store.path, mode="r")
    names = ["vocab"] + [f"{s}/{a}" for s in small_store.splits for a in ("tokens", "labels")]
    for name in [*names, "train/lengths", "test/lengths"]:
        array = group[name]
        assert array_codecs(array) == ("zstd", "crc32c"), name
        assert has_checksum(array)
    # Any zarr v3 reader reads it: the checksum is a standard codec, the layout is format 2's.
    assert small_store.attrs["format"] == 2
    np.testing.assert_array_equal(group["train/tokens"][:], small_store.read("train", slice(None)))


def test_flipped_bytes_raise_store_corrupt_error_naming_the_rows(small_store):
    clean = small_store.read("train", slice(None))
    flip_bytes(_chunk_file(small_store, "train", "tokens", 2))
    store = TokenStore.open(small_store.path)  # metadata is intact: it opens
    for rows in (slice(10, 30), slice(16, 24), np.array([17, 3]), [23]):
        with pytest.raises(StoreCorruptError) as exc:
            store.read("train", rows)
        message = str(exc.value)
        assert isinstance(exc.value, TextVAEError) and isinstance(exc.value, OSError)
        assert "\n" not in message
        assert store.path in message and "train/tokens" in message
        assert "rows 16-23" in message and "checksum mismatch" in message
        assert "textvae-ingest" in message and "--overwrite" in message
    # The other chunks read as before.
    np.testing.assert_array_equal(store.read("train", slice(0, 16)), clean[:16])
    np.testing.assert_array_equal(store.read("train", [3, 30, 24]), clean[[3, 30, 24]])


@pytest.mark.parametrize("name", ["labels", "lengths"])
def test_damaged_labels_and_lengths(small_store, name):
    flip_bytes(_chunk_file(small_store, "train", name, 0))
    read = small_store.labels if name == "labels" else small_store.lengths
    with pytest.raises(StoreCorruptError, match=f"train/{name} holding rows 0-36 "):
        read("train", [5])


def test_damaged_vocab(small_store):
    flip_bytes(Path(small_store.path) / "vocab" / "c" / "0")
    store = TokenStore.open(small_store.path)
    with pytest.raises(StoreCorruptError, match="the chunk of vocab holding ids 0-11"):
        list(store.vocab)


def test_missing_chunk_file_is_damage(small_store):
    _chunk_file(small_store, "train", "tokens", 1).unlink()
    missing = r"rows 8-15 is damaged \(its file train/tokens/c/1/0 is missing\)"
    with pytest.raises(StoreCorruptError, match=missing):
        small_store.read("train", slice(0, 37))
    report = verify_store(small_store.path)
    assert [str(d) for d in report.damaged] == [
        "train/tokens rows 8-15: its file train/tokens/c/1/0 is missing"
    ]


def test_an_empty_review_is_not_taken_for_a_missing_chunk(tmp_path, corpus_dir):
    from textvae.data.corpus import Corpus

    class WithEmptyRow(Corpus):
        """The corpus, with review 17 of train encoded to no ids at all (an all-padding row)."""

        def __init__(self, inner: Corpus) -> None:
            self.inner, self.splits, self.source = inner, inner.splits, inner.source

        def _reviews(self, split):
            return self.inner._reviews(split)

        def vocabulary(self, vocab_size, progress=None):
            return self.inner.vocabulary(vocab_size, progress=progress)

        def encoded(self, split, vocab):
            for i, (ids, label) in enumerate(self.inner.encoded(split, vocab)):
                yield ([] if split == "train" and i == 17 else ids), label

    corpus = WithEmptyRow(open_corpus(corpus_dir))
    store = build_store(
        tmp_path / "e.zarr", corpus, StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    )
    ids = store.read("train", slice(16, 24))
    assert not ids[1].any() and ids[[0, 2]].any(axis=1).all()  # row 17 only is all padding
    assert verify_store(store.path).ok


def test_sequence_raises_store_corrupt_error(small_store):
    from textvae.batching.sequence import OneHotSequence

    flip_bytes(_chunk_file(small_store, "train", "tokens", 2))
    seq = OneHotSequence(small_store.path, "train", batch_size=4, shuffle=False)
    seq[0]  # rows 0-3: an intact chunk
    with pytest.raises(StoreCorruptError, match="train/tokens holding rows 16-23"):
        seq[4]  # rows 16-19


@pytest.mark.slow
def test_train_prints_one_line(small_store, tmp_path, capsys):
    from textvae.cli import train_main

    flip_bytes(_chunk_file(small_store, "train", "tokens", 3))
    argv = ["--data", small_store.path, "--out", str(tmp_path / "out"), "--epochs", "1"]
    argv += ["--vocab", "12", "--max-len", "16", "--embedding-dim", "8", "--hidden", "8"]
    argv += ["--dense", "8", "--latent", "4", "--batch-size", "8", "--verbose", "0"]
    assert train_main(argv) == EXIT_USER_ERROR
    (line,) = _error_lines(capsys)
    assert "train/tokens holding rows 24-31 is damaged (checksum mismatch)" in line
    assert "Traceback" not in capsys.readouterr().err


# -- textvae-verify ---------------------------------------------------------------------------
def test_verify_sound_store(small_store, capsys):
    report = verify_store(small_store.path)
    assert report.ok and report.damaged == () and report.unchecked == ()
    # vocab 1 chunk; train: 5 token chunks, 1 labels, 1 lengths; test: 2 + 1 + 1
    assert report.chunks == 1 + 7 + 4 and report.rows == {"train": 37, "test": 11}
    assert verify_main([small_store.path, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {small_store.path}: 12 chunks checked (train 37, test 11 rows)")


def test_verify_lists_each_damaged_chunk(small_store, capsys):
    flip_bytes(_chunk_file(small_store, "train", "tokens", 2))
    flip_bytes(_chunk_file(small_store, "test", "lengths", 0))
    report = verify_store(small_store.path)
    assert not report.ok
    assert [str(d) for d in report.damaged] == [
        "train/tokens rows 16-23: checksum mismatch",
        "test/lengths rows 0-10: checksum mismatch",
    ]
    assert verify_main([small_store.path, "--quiet"]) == EXIT_DAMAGED
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "damaged: train/tokens rows 16-23: checksum mismatch",
        "damaged: test/lengths rows 0-10: checksum mismatch",
    ]
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: {small_store.path}: 2 of 12 chunks damaged")
    assert "--overwrite" in line


def test_verify_progress(small_store):
    seen: list[tuple[str, int]] = []
    verify_store(small_store.path, progress=lambda stage, count: seen.append((stage, count)))
    assert seen[:5] == [("verify train/tokens", n) for n in (8, 16, 24, 32, 37)]
    assert seen[-1] == ("verify test/lengths", 11)


def test_verify_usage_errors(tmp_path, capsys):
    with pytest.raises(StoreNotFoundError):
        verify_store(tmp_path / "absent.zarr")
    assert verify_main([str(tmp_path / "absent.zarr")]) == EXIT_USER_ERROR
    (line,) = _error_lines(capsys)
    assert "no token store at" in line
    with pytest.raises(SystemExit) as exc:
        verify_main([])
    assert exc.value.code == EXIT_USER_ERROR
    with pytest.raises(SystemExit) as exc:
        verify_main([str(tmp_path / "x.zarr"), "--storage-option", "anon=true"])
    assert exc.value.code == EXIT_USER_ERROR


# -- stores written before checksums ------------------------------------------------------------
def test_legacy_store_reads_and_verify_says_unchecked(legacy_store, small_store, capsys):
    group = zarr.open_group(legacy_store.path, mode="r")
    assert array_codecs(group["train/tokens"]) == ("zstd",)
    store = TokenStore.open(legacy_store.path)
    np.testing.assert_array_equal(
        store.read("train", slice(None)), small_store.read("train", slice(None))
    )
    assert list(store.vocab) == list(small_store.vocab)
    report = verify_store(legacy_store.path)
    assert report.ok and len(report.unchecked) == 7  # vocab + 3 arrays x 2 splits
    assert verify_main([legacy_store.path, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "has no checksums in vocab, train/tokens" in out and out.splitlines()[-1].startswith(
        "ok: "
    )


def test_legacy_store_undecodable_chunk(legacy_store):
    path = _chunk_file(legacy_store, "train", "tokens", 1)
    data = bytearray(path.read_bytes())
    data[:4] = b"\0\0\0\0"  # zstd's magic number: zstd refuses the frame
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=r"rows 8-15 is damaged \(cannot be decoded"):
        legacy_store.read("train", slice(0, 16))
    (damage,) = verify_store(legacy_store.path).damaged
    assert (damage.name, damage.start, damage.stop) == ("train/tokens", 8, 16)
    assert "Zstd decompression error" in damage.problem


def _flip_each_byte(store: TokenStore, path: Path) -> dict[str, int]:
    """Flip each byte of a tokens chunk file in turn and read its rows back: how many flips
    raised StoreCorruptError ("caught"), read back other ids silently ("silent"), or changed
    nothing ("same")."""
    clean_file = path.read_bytes()
    k = int(path.parent.name)
    rows = slice(k * CHUNK_ROWS, (k + 1) * CHUNK_ROWS)
    clean = store.read("train", rows)
    counts = {"caught": 0, "silent": 0, "same": 0}
    for i in range(len(clean_file)):
        data = bytearray(clean_file)
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            ids = store.read("train", rows)
        except StoreCorruptError:
            counts["caught"] += 1
        else:
            counts["same" if np.array_equal(ids, clean) else "silent"] += 1
    path.write_bytes(clean_file)
    return counts


def test_every_single_flipped_byte_is_caught(small_store, legacy_store):
    path = _chunk_file(small_store, "train", "tokens", 2)
    counts = _flip_each_byte(small_store, path)
    assert counts == {"caught": path.stat().st_size, "silent": 0, "same": 0}
    # Without a checksum some flips decode to other ids without a word: the finding.
    legacy = _flip_each_byte(legacy_store, _chunk_file(legacy_store, "train", "tokens", 2))
    assert legacy["silent"] > 0
