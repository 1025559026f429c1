"""Fuzz of textvae-ingest's arguments: flags, source and store paths of every kind.

Beside the fuzz, the ingest inputs it found, kept as plain tests.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import PATH_KINDS, check_outcome, example_dir, make_path, run_command
from fuzz_strategies import INT_TEXT, WORD, cli_flags, fuzz_settings, mostly, npz_bytes, ragged
from hypothesis import given
from hypothesis import strategies as st

from textvae.cli import EXIT_USER_ERROR, ingest_main
from textvae.data.store import TokenStore

# The fuzz looks for tracebacks and wrong outcomes: a DeprecationWarning on the way (from a
# library, or from a deprecated flag it draws) is not one of them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


INGEST_FLAGS = {
    "--vocab": mostly(st.sampled_from(["12", "20", "4", "70000"]), INT_TEXT),
    "--max-len": mostly(st.sampled_from(["1", "8", "16"]), INT_TEXT),
    "--chunk-rows": mostly(st.sampled_from(["1", "5", "8"]), INT_TEXT),
    "--padding": mostly(st.sampled_from(["pre", "post"]), WORD),
    "--truncating": mostly(st.sampled_from(["pre", "post"]), WORD),
    "--storage-option": st.one_of(st.sampled_from(["anon=true", "=x", "x"]), WORD),
    "--overwrite": st.none(),
    "--quiet": st.none(),
    "--bogus": st.none(),
}


@fuzz_settings(60)
@given(
    source=mostly(st.sampled_from(["corpus", "corpus-file"]), st.sampled_from(PATH_KINDS)),
    store=mostly(
        st.sampled_from(["fresh", "store", "folder-of-files"]), st.sampled_from(PATH_KINDS)
    ),
    flags=cli_flags(INGEST_FLAGS),
)
def test_fuzz_ingest_arguments(world, source, store, flags):
    with example_dir(world.root) as where:
        src, dst = make_path(source, where, world), make_path(store, where / "out", world)
        before = _snapshot(dst)
        code, _, err = run_command(ingest_main, [src, dst, *flags], where)
        line = check_outcome("ingest arguments", code, err)
        if code == 0:
            opened = TokenStore.open(dst)
            assert opened.num_rows("train") > 0 and opened.vocab.size == opened.vocab_size
            # Only a zarr group (a store, perhaps a damaged one) or an empty folder is replaced.
            replaceable = ("store", "empty-dir", "not-a-group")
            assert before is None or store in replaceable, "replaced a user's files"
        elif before is not None and store != "store":
            # A refused ingest leaves what was there as it was (a user's folder is never
            # deleted to make room for a store).
            assert _snapshot(dst) == before, line


def _snapshot(path: str) -> dict[str, bytes] | None:
    """The files under a local ``path`` and their bytes (None: nothing there)."""
    local = Path(path.removeprefix("file://")) if path else None
    if local is None or not local.exists():
        return None
    if local.is_file():
        return {"": local.read_bytes()}
    return {str(p.relative_to(local)): p.read_bytes() for p in local.rglob("*") if p.is_file()}


def _npz_corpus(where: Path, x, y, word_index: str = '{"good": 1, "bad": 2}') -> str:
    (where / "imdb.npz").write_bytes(npz_bytes({"x_train": x, "y_train": y}))
    (where / "imdb_word_index.json").write_text(word_index)
    return str(where / "imdb.npz")


INGEST_CASES = {
    "vocab-of-2**32": (["--vocab", str(2**32)], "`vocab_size` must be at most 16,777,216"),
    "chunk-of-a-terabyte": (["--max-len", str(10**12)], "a chunk of `chunk_rows` x `max_len`"),
    "empty-store-path": (["--store-kind", "empty"], "`store` must be a non-empty path"),
    "overwrite-a-users-folder": (
        ["--store-kind", "folder-of-files", "--overwrite"],
        "is not a token store",
    ),
    "negative-word-rank": (["--npz", "negative"], "negative word rank -3"),
    "ranks-not-a-list": (["--npz", "flat"], "expected a list of integer word ranks"),
    "word-index-a-list": (["--npz", "index-list"], "not an object of word -> rank"),
    "word-index-rank-0": (["--npz", "rank-0"], "ranks must be integers >= 1"),
}


@pytest.mark.parametrize("case", INGEST_CASES, ids=list(INGEST_CASES))
def test_ingest_inputs_found_by_the_fuzz(world, tmp_path, case):
    flags, message = INGEST_CASES[case]
    source, store = str(world.corpus), str(tmp_path / "s.zarr")
    if "--store-kind" in flags:
        i = flags.index("--store-kind")
        store = make_path(flags[i + 1], tmp_path, world)
        flags = flags[:i] + flags[i + 2 :]
    if "--npz" in flags:
        kind = flags.pop(flags.index("--npz") + 1)
        flags.remove("--npz")
        x = {"flat": np.arange(2)}.get(kind, ragged([[1, -3 if kind == "negative" else 2], [2]]))
        index = {"index-list": "[1, 2]", "rank-0": '{"good": 0}'}.get(kind, '{"good": 1}')
        source = _npz_corpus(tmp_path, x, np.array([0, 1]), index)
    before = _snapshot(store)
    code, _, err = run_command(ingest_main, [source, store, "--quiet", *flags], tmp_path)
    assert message in check_outcome("regressions", code, err)
    assert _snapshot(store) == before  # nothing written, nothing deleted


def test_zip_is_not_a_corpus(world, tmp_path):
    archive = tmp_path / "imdb.npz"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x_train.npy", b"not an array")
        z.writestr("y_train.npy", b"nope")
    (tmp_path / "imdb_word_index.json").write_text('{"a": 1}')
    code, _, err = run_command(
        ingest_main, [str(archive), str(tmp_path / "s.zarr"), "--quiet"], tmp_path
    )
    assert code == EXIT_USER_ERROR and "imdb.npz" in err
