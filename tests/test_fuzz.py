"""Property-based fuzz of every input a user controls (README, "Faults tried").

Three kinds of input are drawn by hypothesis: the three commands' arguments, corpus files, and a
store's metadata and arrays. The property is the same everywhere: the outcome is success or a
:class:`~textvae.errors.TextVAEError` (through a command: exit code 2 and one ``error:`` line on
stderr), never another exception, and a bad input never leaves a store that opens as valid.
The public Python API's validation (configs, stores, the Sequence, the kernel) is drawn too.

Training is never run: ``textvae-train`` is followed up to the point where its configuration is
checked, the run folder prepared and the data opened, and stopped where the model would be built.
Every test is derandomized (the same examples on every run) and small; set
``TEXTVAE_FUZZ_EXAMPLES=N`` to draw N examples per test instead, and ``TEXTVAE_FUZZ_REPORT=PATH``
to write the counts (inputs tried, distinct errors, outcomes) as JSON.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textvae.cli import EXIT_USER_ERROR, ingest_main, sample_main, train_main
from textvae.data.store import TokenStore
from textvae.errors import StoreFormatError, TextVAEError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _fuzz(default: int) -> Callable:
    """hypothesis settings of one fuzz test: reproducible, no deadline, ``default`` examples."""
    return settings(
        max_examples=int(os.environ.get("TEXTVAE_FUZZ_EXAMPLES", default)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


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


def _count(test: str, outcome: str, message: str = "") -> None:
    TALLY["tried"][test] += 1
    TALLY["outcomes"][f"{test}: {outcome}"] += 1
    if message:
        TALLY["errors"][_kind(message)] += 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("TEXTVAE_FUZZ_REPORT")
    if path:
        report = {
            "inputs_tried": sum(TALLY["tried"].values()),
            "per_test": dict(TALLY["tried"]),
            "distinct_errors": len(TALLY["errors"]),
            "outcomes": dict(TALLY["outcomes"]),
            "errors": dict(TALLY["errors"].most_common()),
        }
        Path(path).write_text(json.dumps(report, indent=2))


# --------------------------------------------------------------------------------------------
# Running a command in process

_ERROR_LINE = re.compile(r"^(textvae-[a-z]+( [a-z]+)?: )?error: \S")
_PROGRESS_LINE = re.compile(r"^\w+: [\d,]+ reviews \(")


class _Reached(Exception):
    """Raised where textvae-train would build the model: the fuzz stops there."""


def _first_batches_then_stop(config, store):
    """Stands in for ``textvae.training.train._new_model``: the training Sequence serves its first and
    last batches as the run configured them (batch size, targets, dtype), then the fuzz
    stops before any model is built."""
    from textvae.training.train import _train_sequence

    seq = _train_sequence(config, store)
    seq[0]
    seq[len(seq) - 1]
    raise _Reached


def _stop_at_model():
    return mock.patch("textvae.training.train._new_model", _first_batches_then_stop)


def _command(main: Callable, argv: list[str], cwd: Path) -> tuple[int, str, str]:
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


def _check_outcome(test: str, code: int, err: str) -> str:
    """Success (0), or exit code 2 with exactly one ``error:`` line, the last one on stderr.
    Returns the error line ("" on success)."""
    assert "Traceback" not in err, err
    if code == 0:
        _count(test, "ok")
        return ""
    assert code == EXIT_USER_ERROR, (code, err)
    lines = err.strip().splitlines()
    assert lines and _ERROR_LINE.match(lines[-1]), err
    # Before the error: nothing but ingest progress lines ("vocab: 21 reviews (0.0 s, ...)").
    assert all(_PROGRESS_LINE.match(line) for line in lines[:-1]), err
    _count(test, "error", lines[-1])
    return lines[-1]


@contextlib.contextmanager
def _example_dir(root: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The small world every fuzz test draws from: a corpus and a store, built once


class World:
    def __init__(self, root: Path) -> None:
        from textvae.data.corpus import open_corpus
        from textvae.data.store import build_store
        from textvae.testing import random_reviews, write_jsonl

        rng = np.random.default_rng(7)
        self.root = root
        self.corpus = root / "corpus"
        write_jsonl(self.corpus / "c_train.jsonl", random_reviews(rng, 21))
        write_jsonl(self.corpus / "c_test.jsonl", random_reviews(rng, 6))
        self.store = root / "store.zarr"
        build_store(self.store, open_corpus(self.corpus), vocab_size=12, max_len=16, chunk_rows=8)
        self.cache = root / "cache"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("fuzz"))


def _make_path(kind: str, where: Path, world: World) -> str:
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

# Numbers as a user types them: small, negative, huge, and things that are not numbers. The
# huge ones start at 2**31, past every limit, so that none is accepted and then allocated: a
# `--vocab` of 2**20 is valid, and would only make an example slow.
HUGE = st.one_of(st.integers(2**31, 2**70), st.integers(-(2**70), -4))
INT_TEXT = st.one_of(
    st.integers(-3, 40).map(str),
    HUGE.map(str),
    st.sampled_from(["", "nan", "inf", "1e3", "0x10", "3.5", " 7 ", "٣", "1_0", "-0", "+5"]),
)
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "-inf", "1e309", "-0.0", "0", "1", "0.5", "abc", "1,5"]),
)
WORD = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def _mostly(valid: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` three times in four: an example with several flags keeps a fair chance of
    getting past the parser to the work behind it."""
    return st.one_of(valid, valid, valid, odd)


def _flags(options: dict[str, st.SearchStrategy]) -> st.SearchStrategy[list[str]]:
    """A random subset of ``options`` as ``--flag value`` pairs (a None value: the bare flag)."""
    pairs = st.lists(st.sampled_from(sorted(options)), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(*(options[n] for n in names)).map(
            lambda values: [
                token
                for n, v in zip(names, values, strict=True)
                for token in ([n] if v is None else [n, v])
            ]
        )
    )
    return pairs


# --------------------------------------------------------------------------------------------
# (a) the commands' arguments

INGEST_FLAGS = {
    "--vocab": _mostly(st.sampled_from(["12", "20", "4", "70000"]), INT_TEXT),
    "--max-len": _mostly(st.sampled_from(["1", "8", "16"]), INT_TEXT),
    "--chunk-rows": _mostly(st.sampled_from(["1", "5", "8"]), INT_TEXT),
    "--padding": _mostly(st.sampled_from(["pre", "post"]), WORD),
    "--truncating": _mostly(st.sampled_from(["pre", "post"]), WORD),
    "--storage-option": st.one_of(st.sampled_from(["anon=true", "=x", "x"]), WORD),
    "--overwrite": st.none(),
    "--quiet": st.none(),
    "--bogus": st.none(),
}


@_fuzz(60)
@given(
    source=_mostly(st.sampled_from(["corpus", "corpus-file"]), st.sampled_from(PATH_KINDS)),
    store=_mostly(
        st.sampled_from(["fresh", "store", "folder-of-files"]), st.sampled_from(PATH_KINDS)
    ),
    flags=_flags(INGEST_FLAGS),
)
def test_fuzz_ingest_arguments(world, source, store, flags):
    with _example_dir(world.root) as where:
        src, dst = _make_path(source, where, world), _make_path(store, where / "out", world)
        before = _snapshot(dst)
        code, _, err = _command(ingest_main, [src, dst, *flags], where)
        line = _check_outcome("ingest arguments", code, err)
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


SMALL_INT = st.sampled_from(["1", "2", "8"])
UNIT = st.sampled_from(["0", "0.1", "0.5"])
TRAIN_FLAGS = {
    "--vocab": _mostly(st.just("12"), INT_TEXT),
    "--max-len": _mostly(st.just("16"), INT_TEXT),
    "--batch-size": _mostly(SMALL_INT, INT_TEXT),
    "--epochs": _mostly(SMALL_INT, INT_TEXT),
    "--train-rows": _mostly(SMALL_INT, INT_TEXT),
    "--eval-rows": _mostly(SMALL_INT, INT_TEXT),
    "--targets": _mostly(st.sampled_from(["onehot", "sparse"]), WORD),
    "--dtype": _mostly(st.sampled_from(["float32", "float16", "uint8"]), WORD),
    "--workers": _mostly(SMALL_INT, INT_TEXT),
    "--max-queue-size": _mostly(SMALL_INT, INT_TEXT),
    "--embedding-dim": _mostly(SMALL_INT, INT_TEXT),
    "--hidden": _mostly(SMALL_INT, INT_TEXT),
    "--dense": _mostly(SMALL_INT, INT_TEXT),
    "--latent": _mostly(SMALL_INT, INT_TEXT),
    "--epsilon-std": _mostly(st.sampled_from(["1", "0.01"]), FLOAT_TEXT),
    "--sentiment-weight": _mostly(UNIT, FLOAT_TEXT),
    "--free-bits": _mostly(UNIT, FLOAT_TEXT),
    "--decoder": _mostly(st.sampled_from(["autoregressive", "repeat"]), WORD),
    "--word-dropout": _mostly(UNIT, FLOAT_TEXT),
    "--val-fraction": _mostly(st.sampled_from(["0", "0.5", "0.96"]), FLOAT_TEXT),
    "--learning-rate": _mostly(st.sampled_from(["0.001", "1e-9", "10"]), FLOAT_TEXT),
    "--kl-warmup-epochs": _mostly(UNIT, FLOAT_TEXT),
    "--seed": _mostly(st.sampled_from(["0", "7"]), INT_TEXT),
    "--verbose": _mostly(st.sampled_from(["0", "1", "2"]), INT_TEXT),
    "--resume": st.none(),
    "--overwrite": st.none(),
    "--quick": st.none(),
    "--no-encoder-pooling": st.none(),
    "--storage-option": st.sampled_from(["anon=true", "x"]),
}
TF_CONFIGS = st.sampled_from(
    [None, "", "{", "[]", "3", '{"cluster": 5}', '{"cluster": {"ps": ["h:1"]}}', '{"task": []}']
)


def _make_run(kind: str, where: Path) -> str:
    """A --out folder: fresh, a file, or a run whose checkpoint files are damaged."""
    out = where / "run"
    if kind in ("fresh", "a-file", "under-a-file", "unwritable", "empty"):
        return _make_path(kind, where, None)  # type: ignore[arg-type]
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
@_fuzz(50)
@given(
    data=_mostly(st.sampled_from(["store", "corpus"]), st.sampled_from(PATH_KINDS)),
    store=_mostly(st.none(), st.sampled_from(["fresh", "store", "a-file", "empty"])),
    out=_mostly(st.just("fresh"), st.sampled_from(RUN_KINDS)),
    flags=_flags(TRAIN_FLAGS),
    tf_config=_mostly(st.none(), TF_CONFIGS),
)
def test_fuzz_train_arguments(world, data, store, out, flags, tf_config):
    with _example_dir(world.root) as where:
        argv = ["--data", _make_path(data, where, world), "--out", _make_run(out, where)]
        argv += ["--vocab", "12", "--max-len", "16"]  # the store's sizes; a flag may change them
        if store is not None:
            argv += ["--store", _make_path(store, where / "s", world)]
        env = {"TEXTVAE_CACHE": str(world.cache), "TF_CONFIG": tf_config or ""}
        with (
            mock.patch.dict(os.environ, env),
            _stop_at_model(),
        ):
            try:
                code, _, err = _command(train_main, [*argv, *flags], where)
            except _Reached:
                _count("train arguments", "reached training")
                return
        _check_outcome("train arguments", code, err)
        assert code != 0, "training was stopped before the model: only errors end here"


SAMPLE_FLAGS = {
    "--checkpoint": _mostly(st.just("best.keras"), st.one_of(st.just("../x"), WORD)),
    "--temperature": _mostly(st.sampled_from(["0", "0.5", "2", "1e-300", "1e300"]), FLOAT_TEXT),
    "--top-k": _mostly(st.sampled_from(["1", "5", "1000"]), INT_TEXT),
    "--verbose": _mostly(st.sampled_from(["0", "1", "2"]), INT_TEXT),
}
COMMAND_FLAGS = {
    "prior": {
        "--n": _mostly(st.sampled_from(["1", "3"]), INT_TEXT),
        "--seed": _mostly(st.sampled_from(["0", "4294967296"]), INT_TEXT),
    },
    "interpolate": {"--steps": _mostly(st.sampled_from(["2", "3"]), INT_TEXT)},
}
COMMAND_TEXTS = {
    "reconstruct": st.lists(WORD, min_size=1, max_size=3),
    "interpolate": st.lists(WORD, min_size=2, max_size=2),
}


@st.composite
def sample_arguments(draw) -> list[str]:
    """``COMMAND [texts] [flags]`` after the run folder: mostly what the command takes."""
    command = draw(_mostly(st.sampled_from(["reconstruct", "prior", "interpolate"]), WORD))
    texts = draw(_mostly(COMMAND_TEXTS.get(command, st.just([])), st.lists(WORD, max_size=3)))
    flags = draw(_flags({**SAMPLE_FLAGS, **COMMAND_FLAGS.get(command, {})}))
    return [command, *texts, *flags]


@pytest.fixture(scope="module")
def tiny_run(world) -> Path:
    """A run folder textvae-sample can use: an untrained tiny model (no training needed to
    decode) with the store's vocabulary and configuration."""
    from textvae.config import TrainConfig
    from textvae.model.vae import build_vae
    from textvae.training.run import BEST, RunDir

    store = TokenStore.open(world.store)
    run = RunDir(world.root / "tiny-run")
    run.prepare()
    config = TrainConfig(vocab_size=12, max_len=16).replace(hidden=4, dense=4, latent=2)
    run.write_config(config, store.attrs)
    run.write_vocab(store.vocab.tokens)
    model = build_vae(12, 16, hidden=4, dense=4, latent=2, embedding_dim=4, seed=0)
    model.optimizer.build(model.trainable_variables)  # saved as after training
    run.save_model(model, BEST)
    return run.path


def _make_sample_run(kind: str, where: Path, tiny_run: Path) -> str:
    """A run folder for textvae-sample: a usable one, missing, a file, or damaged files."""
    if kind == "usable":
        return str(tiny_run)
    if kind in ("missing", "a-file", "empty", "empty-dir"):
        return _make_path(kind, where, None)  # type: ignore[arg-type]
    out = where / "run"
    shutil.copytree(tiny_run, out)
    files = {}
    damage = {
        "bad-vocab": ("vocab.json", '["a", "b"]'),
        "vocab-not-json": ("vocab.json", "\x00"),
        "config-list": ("config.json", "[1, 2]"),
        "odd-padding": ("config.json", json.dumps({"store_attrs": {"padding": 7}})),
        "garbage-model": ("best.keras", "PK not a model"),
    }
    name, text = damage[kind]
    files[name] = text
    for file, content in files.items():
        (out / file).write_text(content)
    return str(out)


@pytest.mark.slow
@_fuzz(30)
@given(
    arguments=sample_arguments(),
    run=_mostly(
        st.just("usable"),
        st.sampled_from(
            [
                "missing",
                "a-file",
                "empty",
                "empty-dir",
                "bad-vocab",
                "vocab-not-json",
                "config-list",
                "odd-padding",
                "garbage-model",
            ]
        ),
    ),
)
def test_fuzz_sample_arguments(world, tiny_run, arguments, run):
    with _example_dir(world.root) as where:
        command, *rest = arguments
        argv = [command, _make_sample_run(run, where, tiny_run), *rest]
        code, out, err = _command(sample_main, argv, where)
        _check_outcome("sample arguments", code, err)
        assert code != 0 or (run == "usable" and out), "only the usable run decodes"


# --------------------------------------------------------------------------------------------
# (b) corpus files

LABELS = _mostly(
    st.sampled_from([0, 1, "pos", "neg", "positive", "Negative", " 1 ", 1.0, True]),
    st.sampled_from([2, -1, "", None, "maybe", 0.5, [1], {"a": 1}]),
)
TEXTS = _mostly(st.text(max_size=40), st.sampled_from(["x " * 5000, 7, None, ["a"]]))


def _jsonl_line(record: dict) -> st.SearchStrategy[bytes]:
    return st.just((json.dumps(record) + "\n").encode())


JSONL_LINES = _mostly(
    st.one_of(
        st.fixed_dictionaries({"text": TEXTS, "label": LABELS}),
        st.fixed_dictionaries({"review": TEXTS, "sentiment": LABELS}),
    ).flatmap(_jsonl_line),
    st.one_of(
        st.fixed_dictionaries({"label": LABELS}).flatmap(_jsonl_line),
        st.sampled_from([b"\n", b"[1, 2]\n", b"{bad json\n", b"\xef\xbb\xbf{}\n", b"\xff\xfe\n"]),
        st.binary(max_size=30),
    ),
)


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


CSV_FILES = st.one_of(
    st.builds(
        _csv_bytes,
        st.sampled_from([["text", "label"], ["review", "sentiment"], ["a", "label"], ["text"], []]),
        st.lists(
            st.lists(st.one_of(WORD, st.sampled_from(["0", "1", "pos"])), max_size=3), max_size=6
        ),
    ),
    st.binary(max_size=60),
    st.sampled_from([b"", b"text,label\n", b'text,label\n"unclosed,1\n', b"text,label\n\xe9,1\n"]),
)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _ragged(seqs: list[list[int]]) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    for i, seq in enumerate(seqs):
        out[i] = seq
    return out


@st.composite
def _keras_arrays(draw) -> bytes:
    """x_train / y_train as Keras writes them (ragged lists of ranks), mostly well formed."""
    n = draw(st.integers(0, 6))
    ranks = _mostly(st.integers(1, 40), st.integers(-5, 0))
    x = draw(st.lists(st.lists(ranks, max_size=8), min_size=n, max_size=n))
    y = draw(_mostly(st.lists(st.integers(0, 1), min_size=n, max_size=n), st.lists(LABELS)))
    arrays = {"x_train": _ragged(x), "y_train": np.asarray(y, dtype=object)}
    if draw(st.booleans()):
        arrays.update(x_test=_ragged(x[:2]), y_test=np.asarray(y[:2], dtype=object))
    return _npz_bytes(arrays)


NPZ_FILES = _mostly(
    _keras_arrays(),
    st.one_of(
        st.builds(
            lambda x: _npz_bytes({"x_train": x, "y_train": np.zeros(len(x), dtype=np.int64)}),
            st.sampled_from(
                [np.zeros((3, 4)), np.arange(3), np.array(["a", "b"]), np.zeros((2, 2))]
            ),
        ),
        st.builds(lambda: _npz_bytes({"x_test": np.arange(2), "y_test": np.arange(2)})),
        st.binary(max_size=60),
    ),
)
WORD_INDEXES = _mostly(
    st.lists(WORD, unique=True, max_size=30).map(
        lambda words: json.dumps({w: rank for rank, w in enumerate(words, 1)})
    ),
    st.sampled_from(['{"a": 0}', '{"a": "1"}', "[1, 2]", "{", '{"a": 1, "b": 1}', '"x"']),
)


@st.composite
def corpora(draw) -> tuple[str, dict[str, bytes]]:
    """A corpus layout and its files' bytes, relative to the corpus root."""
    layout = draw(st.sampled_from(["jsonl", "jsonl.gz", "csv", "acl", "npz", "dir"]))
    if layout in ("jsonl", "jsonl.gz"):
        body = b"".join(draw(st.lists(JSONL_LINES, max_size=8)))
        if layout == "jsonl.gz" and draw(st.booleans()):
            body = gzip.compress(body)
        return "c_train." + layout, {"c_train." + layout: body}
    if layout == "csv":
        return "c_train.csv", {"c_train.csv": draw(CSV_FILES)}
    if layout == "npz":
        return "imdb.npz", {
            "imdb.npz": draw(NPZ_FILES),
            "imdb_word_index.json": draw(WORD_INDEXES).encode(),
        }
    if layout == "acl":
        files = {}
        for split in draw(st.lists(st.sampled_from(["train", "test"]), unique=True)):
            for label in draw(st.lists(st.sampled_from(["pos", "neg"]), unique=True)):
                bodies = _mostly(st.text(max_size=20).map(str.encode), st.binary(max_size=20))
                for k, body in enumerate(draw(st.lists(bodies, max_size=3))):
                    name = draw(
                        _mostly(st.just(f"{k}_7.txt"), st.sampled_from([f"x{k}.txt", "a.md"]))
                    )
                    files[f"{split}/{label}/{name}"] = body
        return ".", files
    names = draw(
        st.lists(st.sampled_from(["a_train.jsonl", "b_train.jsonl", "x_test.csv", "y.csv"]))
    )
    return ".", {name: draw(JSONL_LINES) for name in names}


@_fuzz(80)
@given(corpus=corpora(), max_len=st.sampled_from(["1", "4", "16"]))
def test_fuzz_corpus_files(world, corpus, max_len):
    source, files = corpus
    with _example_dir(world.root) as where:
        root = where / "corpus"
        root.mkdir()
        for name, body in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(body)
        store = where / "s.zarr"
        argv = [str(root / source), str(store), "--vocab", "20", "--max-len", max_len, "--quiet"]
        code, _, err = _command(ingest_main, argv, where)
        _check_outcome(f"corpus files ({Path(source).suffix or 'folder'})", code, err)
        if code != 0:
            assert not store.exists(), "a failed ingest leaves nothing that could be opened"
            return
        opened = TokenStore.open(store)
        for split in opened.splits:
            ids = opened.read(split, slice(None))
            assert ids.shape == (opened.num_rows(split), int(max_len)) and ids.shape[0] > 0
            assert ids.max() < opened.vocab_size
            assert set(np.unique(opened.labels(split))) <= {0, 1}


# --------------------------------------------------------------------------------------------
# (c) store metadata and arrays

_META_KEYS = [
    "format",
    "vocab_size",
    "max_len",
    "pad_id",
    "start_id",
    "oov_id",
    "padding",
    "truncating",
    "splits",
    "source",
    "complete",
]
_ORIGINAL_ATTRS = {
    "format": 1,
    "vocab_size": 12,
    "max_len": 16,
    "pad_id": 0,
    "start_id": 1,
    "oov_id": 2,
    "padding": "pre",
    "truncating": "pre",
    "splits": ["train", "test"],
    "complete": True,
}
ODD_VALUES = st.sampled_from(
    [None, "", "12", 12.5, -1, 0, 3, 2**40, True, [], ["train"], {"a": 1}, "pre", "train", 16]
)


@st.composite
def damages(draw) -> tuple[str, Callable[[zarr.Group], None], bool]:
    """``(name, damage(group), bad)``: one change to a store; ``bad`` unless it is harmless
    (the ``source`` text, or a value set to what it already was; ``damage`` returns False when
    it left the metadata as it was)."""
    kind = draw(st.sampled_from(["meta-value", "meta-drop", "meta-type", "array", "json"]))
    if kind == "meta-value":
        key = draw(st.sampled_from(_META_KEYS))
        value = draw(ODD_VALUES)

        def change(group, key=key, value=value):
            group.attrs["textvae"] = {**group.attrs["textvae"], key: value}

        original = _ORIGINAL_ATTRS.get(key)
        harmless = key == "source" or (type(original) is type(value) and original == value)
        harmless = harmless or (key == "splits" and value == ["train"])  # a store of one split
        return f"attrs[{key}]={value!r}", change, not harmless
    if kind == "meta-drop":
        key = draw(st.sampled_from(_META_KEYS))

        def drop(group, key=key):
            group.attrs["textvae"] = {k: v for k, v in group.attrs["textvae"].items() if k != key}

        return f"attrs without {key}", drop, key != "source"
    if kind == "meta-type":
        value = draw(st.sampled_from([None, [], "textvae", 1, {"format": 1}]))

        def replace(group, value=value):
            group.attrs["textvae"] = value

        return f"attrs = {value!r}", replace, True
    if kind == "array":
        path = draw(
            st.sampled_from(["vocab", "train/tokens", "train/labels", "train/lengths", "test"])
        )
        shape = draw(st.sampled_from(["same", "short", "2-d", "1-d", "group"]))
        dtype = draw(st.sampled_from(["same", "int64", "float32", "str", "uint32"]))

        def swap(group, path=path, shape=shape, dtype=dtype):
            old = group[path]
            if shape == "group" or not isinstance(old, zarr.Array):
                del group[path]
                group.create_group(path)
                return
            shapes = {
                "same": old.shape,
                "short": (max(old.shape[0] - 1, 0), *old.shape[1:]),
                "2-d": (old.shape[0], 3),
                "1-d": (old.shape[0],),
            }
            new_dtype = old.dtype if dtype == "same" else (str if dtype == "str" else dtype)
            del group[path]
            fresh = group.create_array(path, shape=shapes[shape], dtype=new_dtype)
            if new_dtype is str:
                fresh[...] = np.full(shapes[shape], "w", dtype=object)
            # The same shape and dtype: the metadata is as it was (only the values are lost).
            return shapes[shape] != old.shape or dtype != "same"

        return f"{path}: shape {shape}, dtype {dtype}", swap, True
    # The JSON metadata file of the group or of an array, overwritten.
    target = draw(st.sampled_from(["zarr.json", "vocab/zarr.json", "train/tokens/zarr.json"]))
    body = draw(st.sampled_from([b"", b"{", b"[]", b'{"zarr_format": 2}', b"\xff"]))

    def overwrite(group, target=target, body=body):
        Path(group.store.root, target).write_bytes(body)

    return f"{target} = {body!r}", overwrite, True


@pytest.mark.slow
@_fuzz(80)
@given(damage=damages())
def test_fuzz_store_metadata(world, damage):
    from textvae.batching.sequence import OneHotSequence

    name, change, bad = damage
    with _example_dir(world.root) as where:
        path = Path(_make_path("store", where, world))
        bad = change(zarr.open_group(path, mode="r+")) is not False and bad
        try:
            store = TokenStore.open(path)
            store.vocab  # noqa: B018  (read: a damaged vocabulary is found here at the latest)
            seq = OneHotSequence(store, "train", 4, seed=0)
            seq[0]
            seq[len(seq) - 1]
        except TextVAEError as err:
            assert "\n" not in str(err)
            _count("store metadata", "refused", str(err))
        else:
            assert not bad, f"{name}: a damaged store opened as valid"
            _count("store metadata", "ok")
        code, _, err = _train_on(world, path, where)
        if code is not None:
            _check_outcome("store metadata (textvae-train)", code, err)


def _train_on(world: World, store: Path, where: Path) -> tuple[int | None, str, str]:
    """textvae-train on ``store`` up to the model; code None when it got there."""
    argv = ["--data", str(store), "--out", str(where / "run"), "--vocab", "12", "--max-len", "16"]
    with (
        mock.patch.dict(os.environ, {"TEXTVAE_CACHE": str(world.cache)}),
        _stop_at_model(),
    ):
        try:
            return _command(train_main, argv, where)
        except _Reached:
            return None, "", ""


# --------------------------------------------------------------------------------------------
# The public Python API with bad arguments

ODD_ARGS = st.one_of(
    st.integers(-3, 40),
    HUGE,
    st.floats(allow_nan=True),
    st.sampled_from([None, True, "", "8", "pre", "onehot", [1], (2, 3), b"x", np.int64(3)]),
)


@_fuzz(120)
@given(
    api=st.sampled_from(["IngestConfig", "TrainConfig", "ModelConfig"]),
    field=st.sampled_from(
        [
            "vocab_size",
            "max_len",
            "chunk_rows",
            "padding",
            "batch_size",
            "epochs",
            "workers",
            "targets",
            "dtype",
            "seed",
            "train_rows",
            "val_fraction",
            "kl_warmup_epochs",
            "out",
            "data",
            "store",
            "source",
            "verbose",
            "hidden",
            "latent",
            "decoder",
            "word_dropout",
            "learning_rate",
            "epsilon_std",
            "free_bits",
            "storage_options",
        ]
    ),
    value=ODD_ARGS,
)
def test_fuzz_config_arguments(api, field, value):
    import dataclasses

    import textvae

    cls = getattr(textvae, api)
    if field not in {f.name for f in dataclasses.fields(cls)}:
        return
    base = {"source": "c.jsonl", "store": "s.zarr"} if api == "IngestConfig" else {}
    try:
        cls(**{**base, field: value})
    except TextVAEError as err:
        assert isinstance(err, ValueError) and f"`{field}`" in str(err), err
        _count("config arguments", "refused", str(err))
    else:
        _count("config arguments", "ok")


@_fuzz(60)
@given(
    argument=st.sampled_from(
        [
            "batch_size",
            "split",
            "targets",
            "dtype",
            "seed",
            "shard_index",
            "num_shards",
            "rows",
            "window_chunks",
            "pool_size",
            "vocab_size",
            "max_len",
            "row_subset",
        ]
    ),
    value=st.one_of(ODD_ARGS, st.sampled_from([np.arange(3), np.array([-1]), np.zeros(2)])),
)
def test_fuzz_sequence_arguments(world, argument, value):
    from textvae.batching.sequence import OneHotSequence

    try:
        seq = OneHotSequence(str(world.store), **{argument: value})
        seq[0]
    except TextVAEError as err:
        _count("sequence arguments", "refused", str(err))
    except IndexError as err:  # indices out of range: the built-in error, stating the range
        assert "valid rows are [0, 21)" in str(err), err
        _count("sequence arguments", "refused", str(err))
    else:
        _count("sequence arguments", "ok")


@_fuzz(60)
@given(
    argument=st.sampled_from(
        ["vocab_size", "max_len", "chunk_rows", "padding", "truncating", "storage_options"]
    ),
    value=ODD_ARGS,
)
def test_fuzz_build_store_arguments(world, argument, value):
    from textvae.data.corpus import open_corpus
    from textvae.data.store import build_store

    kwargs = {"vocab_size": 12, "max_len": 8, argument: value}
    with _example_dir(world.root) as where:
        try:
            build_store(where / "s.zarr", open_corpus(world.corpus), **kwargs)
        except TextVAEError as err:
            assert not (where / "s.zarr").exists()
            _count("build_store arguments", "refused", str(err))
        else:
            _count("build_store arguments", "ok")


@_fuzz(60)
@given(
    ids=st.one_of(
        st.sampled_from([[[0, 1]], [[3]], [[-1, 0]], [[0.5]], [[True]], [], [[]], "ab", None]),
        st.builds(np.zeros, st.sampled_from([(2, 3), (2,), (1, 1, 1)]), st.sampled_from(["i4"])),
    ),
    # No huge positive sizes: the kernel would allocate them (it is asked to), not refuse them.
    vocab_size=st.one_of(ODD_ARGS.filter(lambda v: not isinstance(v, int) or v < 2**31)),
    dtype=st.one_of(st.sampled_from(["float32", "uint8", "float16"]), ODD_ARGS),
)
def test_fuzz_onehot_arguments(ids, vocab_size, dtype):
    """The kernel imports only NumPy and numba: it refuses with ValueError / TypeError."""
    from textvae.kernels import onehot

    try:
        onehot(ids, vocab_size, dtype=dtype)
    except (ValueError, TypeError) as err:
        assert str(err), type(err)
        _count("onehot arguments", "refused", str(err))
    else:
        _count("onehot arguments", "ok")


# --------------------------------------------------------------------------------------------
# What the fuzz found, kept as plain tests (each was a traceback, a silent loss, or a wrong
# success before the fix; a derandomized fuzz of a few dozen examples may not draw it again)


def _npz_corpus(where: Path, x, y, word_index: str = '{"good": 1, "bad": 2}') -> str:
    (where / "imdb.npz").write_bytes(_npz_bytes({"x_train": x, "y_train": y}))
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
        store = _make_path(flags[i + 1], tmp_path, world)
        flags = flags[:i] + flags[i + 2 :]
    if "--npz" in flags:
        kind = flags.pop(flags.index("--npz") + 1)
        flags.remove("--npz")
        x = {"flat": np.arange(2)}.get(kind, _ragged([[1, -3 if kind == "negative" else 2], [2]]))
        index = {"index-list": "[1, 2]", "rank-0": '{"good": 0}'}.get(kind, '{"good": 1}')
        source = _npz_corpus(tmp_path, x, np.array([0, 1]), index)
    before = _snapshot(store)
    code, _, err = _command(ingest_main, [source, store, "--quiet", *flags], tmp_path)
    assert message in _check_outcome("regressions", code, err)
    assert _snapshot(store) == before  # nothing written, nothing deleted


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
    argv = ["--data", _make_path("store", tmp_path, world), "--out", str(tmp_path / "run")]
    argv += ["--vocab", "12", "--max-len", "16", *flags]
    with mock.patch.dict(os.environ, env), _stop_at_model():
        code, _, err = _command(train_main, argv, tmp_path)
    assert message in _check_outcome("regressions", code, err)


def test_a_batch_larger_than_the_data_costs_only_the_data(world):
    """--batch-size 10**9 allocated a 10**9-row one-hot buffer (MemoryError); a batch holds
    at most the rows of an epoch."""
    from textvae.batching.sequence import OneHotSequence

    seq = OneHotSequence(str(world.store), batch_size=10**9, pool_size=1)
    ids, targets = seq[0]
    assert len(seq) == 1 and ids.shape == (21, 16)
    assert targets["reconstruction"].shape == (21, 16, 12)


SAMPLE_CASES = {
    "negative-seed": (["prior", "RUN", "--seed", "-1"], "`seed` must be a non-negative"),
    "a-trillion-draws": (["prior", "RUN", "--n", str(10**12)], "`n` must be an integer in"),
    "a-trillion-steps": (["interpolate", "RUN", "a", "b", "--steps", str(10**12)], "`steps`"),
    "empty-run": (["prior", ""], "`out` must be a non-empty path"),
    "odd-padding": (["reconstruct", "odd-padding", "a film"], "config.json is damaged"),
}


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=list(SAMPLE_CASES))
def test_sample_inputs_found_by_the_fuzz(world, tiny_run, tmp_path, case):
    argv, message = SAMPLE_CASES[case]
    run = str(tiny_run) if case != "odd-padding" else _make_sample_run(case, tmp_path, tiny_run)
    argv = [run if a in ("RUN", "odd-padding") else a for a in argv]
    code, _, err = _command(sample_main, argv, tmp_path)
    assert message in _check_outcome("regressions", code, err)


STORE_CASES = {
    "vocab_size-float": (lambda g: _set_attr(g, "vocab_size", 12.5), "vocab_size=12.5"),
    "vocab_size-text": (lambda g: _set_attr(g, "vocab_size", "12"), "vocab_size='12'"),
    "format-true": (lambda g: _set_attr(g, "format", True), "format True"),
    "padding-unknown": (lambda g: _set_attr(g, "padding", "middle"), "padding='middle'"),
    "splits-a-string": (lambda g: _set_attr(g, "splits", "train"), "splits='train'"),
    "no-pad_id": (lambda g: _set_attr(g, "pad_id", None), "pad_id=None"),
    "labels-a-group": (
        lambda g: (g.__delitem__("train/labels"), g.create_group("train/labels")),
        "is a Group, not an array",
    ),
    "lengths-float": (
        lambda g: g.create_array("train/lengths", shape=(21,), dtype="f4", overwrite=True),
        "float32",
    ),
    "vocab-metadata-garbage": (
        lambda g: Path(g.store.root, "vocab", "zarr.json").write_bytes(b"\xff"),
        "the metadata of the 'vocab' array is unreadable",
    ),
}


def _set_attr(group: zarr.Group, key: str, value) -> None:
    group.attrs["textvae"] = {**group.attrs["textvae"], key: value}


@pytest.mark.parametrize("case", STORE_CASES, ids=list(STORE_CASES))
def test_store_damage_found_by_the_fuzz(world, tmp_path, case):
    damage, message = STORE_CASES[case]
    path = _make_path("store", tmp_path, world)
    damage(zarr.open_group(path, mode="r+"))
    with pytest.raises(StoreFormatError, match=re.escape(message)):
        TokenStore.open(path)
    code, _, err = _train_on(world, Path(path), tmp_path)
    assert message in _check_outcome("regressions", code, err)


def test_sequence_arguments_found_by_the_fuzz(world):
    from textvae.batching.sequence import OneHotSequence
    from textvae.errors import InvalidArgumentError, StoreMismatchError

    with pytest.raises(InvalidArgumentError, match="`split` must be a split name"):
        OneHotSequence(str(world.store), split=np.arange(3))
    with pytest.raises(StoreMismatchError, match="has no split"):
        TokenStore.open(world.store).num_rows(np.arange(3))
    with pytest.raises(InvalidArgumentError, match="`targets` must be one of"):
        OneHotSequence(str(world.store), targets=np.arange(3))
    with pytest.raises(InvalidArgumentError, match="`seed` must be a non-negative integer"):
        OneHotSequence(str(world.store), seed=-1)


def test_zip_is_not_a_corpus(world, tmp_path):
    archive = tmp_path / "imdb.npz"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x_train.npy", b"not an array")
        z.writestr("y_train.npy", b"nope")
    (tmp_path / "imdb_word_index.json").write_text('{"a": 1}')
    code, _, err = _command(
        ingest_main, [str(archive), str(tmp_path / "s.zarr"), "--quiet"], tmp_path
    )
    assert code == EXIT_USER_ERROR and "imdb.npz" in err
