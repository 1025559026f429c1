"""Synthetic and real token stores for the benchmarks, built once and cached on disk.

Every store here is a real format-1 store made by :func:`textvae.data.ingest.build_store`: only the
corpus is synthetic. :class:`SyntheticCorpus` draws ids from a Zipf-like distribution (word ``r``
of ``vocab_size - 3`` has weight ``1 / r**1.1``, the shape of natural text) and review lengths
from a log-normal around IMDB's (median 230 ids, a long tail truncated at ``max_len``), so
compression and padding look like a real corpus's, and 1M rows build in well under a minute.

Stores are cached under :func:`bench_dir` (``$TEXTVAE_BENCH_DIR``, default
``/tmp/textvae-bench``) in a folder named after their parameters; a store whose build was
interrupted never opens (no ``complete`` flag), so it is rebuilt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from textvae.data import StoreSpec, TokenStore, build_store
from textvae.data.corpus import Corpus
from textvae.data.discover import find_imdb
from textvae.data.format import FORMAT
from textvae.data.vocab import FIRST_WORD_ID, RESERVED, START_ID, Vocabulary
from textvae.errors import TextVAEError

__all__ = [
    "BENCH_DIR_ENV",
    "DEFAULT_BENCH_DIR",
    "IMDB_DIR",
    "REPO_ROOT",
    "SyntheticCorpus",
    "bench_dir",
    "cached_synthetic_store",
    "imdb_store",
    "synthetic_store",
]

#: Environment variable naming the cache folder of benchmark stores.
BENCH_DIR_ENV = "TEXTVAE_BENCH_DIR"
DEFAULT_BENCH_DIR = "/tmp/textvae-bench"
#: The repository's root: ``shared/data/imdb`` is looked up from here, wherever pytest runs.
REPO_ROOT = Path(__file__).resolve().parents[1]


def _imdb_dir() -> Path | None:
    # The CLI's search (TEXTVAE_IMDB, then shared/data/imdb and ../shared/data/imdb), relative
    # to the repository rather than the current directory; only a folder of text reviews will
    # do (Keras' pre-tokenised imdb.npz has another vocabulary).
    found = find_imdb(root=REPO_ROOT)
    return found if found is not None and found.is_dir() else None


#: The real IMDB corpus (a folder of JSONL files or aclImdb), or None when none is found.
IMDB_DIR = _imdb_dir()

#: Bump when the generator changes, so cached stores of the old generator are not reused.
GENERATOR_VERSION = 1
ZIPF_EXPONENT = 1.1
MEDIAN_LENGTH = 230  # ids per review, start id included; IMDB train's median is about 230
LENGTH_SIGMA = 0.6
#: Rows generated per NumPy draw (a few MB of ids).
DRAW_ROWS = 8192


def bench_dir() -> Path:
    """The folder where benchmark stores are cached (``$TEXTVAE_BENCH_DIR`` or the default)."""
    path = Path(os.environ.get(BENCH_DIR_ENV) or DEFAULT_BENCH_DIR)
    # Under pytest-xdist each worker keeps its own cache: two workers never build one store.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get(BENCH_DIR_ENV):
        path = path / worker
    path.mkdir(parents=True, exist_ok=True)
    return path


class SyntheticCorpus(Corpus):
    """``n_rows`` random labelled reviews, already encoded: ids with a Zipf-like distribution.

    The vocabulary is ``<pad>, <start>, <oov>, w3, w4, ...`` (``vocab_size`` ids); every review
    starts with ``START_ID`` like an encoded real one. The same parameters give the same rows.
    """

    def __init__(
        self, n_rows: int, *, vocab_size: int = 20000, max_len: int = 300, seed: int = 0
    ) -> None:
        if not isinstance(n_rows, int) or n_rows < 1:
            raise ValueError(f"`n_rows` must be a positive integer. Received: n_rows={n_rows!r}")
        if not isinstance(vocab_size, int) or vocab_size <= FIRST_WORD_ID:
            raise ValueError(
                f"`vocab_size` must be an integer > {FIRST_WORD_ID}. "
                f"Received: vocab_size={vocab_size!r}"
            )
        self.n_rows = n_rows
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.seed = seed
        self.splits = ("train",)
        self.source = (
            f"synthetic(v{GENERATOR_VERSION}, n_rows={n_rows}, vocab_size={vocab_size}, "
            f"max_len={max_len}, seed={seed}, zipf={ZIPF_EXPONENT})"
        )
        ranks = np.arange(1, vocab_size - FIRST_WORD_ID + 1, dtype=np.float64)
        cdf = np.cumsum(ranks**-ZIPF_EXPONENT)
        self._cdf = cdf / cdf[-1]

    def vocabulary(self, vocab_size: int, progress=None) -> Vocabulary:
        words = tuple(f"w{i}" for i in range(FIRST_WORD_ID, self.vocab_size))
        return Vocabulary(RESERVED + words[: vocab_size - FIRST_WORD_ID])

    def encoded(self, split: str, vocab: Vocabulary) -> Iterator[tuple[np.ndarray, int]]:
        """(ids, label) of every review; ids is a 1-D int array (``build_store`` pads it)."""
        self._check_split(split)
        rng = np.random.default_rng([self.seed, GENERATOR_VERSION])
        dtype = np.uint16 if self.vocab_size <= 65536 else np.uint32
        # Only ids the store will keep are drawn: longer reviews are truncated to max_len anyway.
        for start in range(0, self.n_rows, DRAW_ROWS):
            rows = min(DRAW_ROWS, self.n_rows - start)
            lengths = rng.lognormal(np.log(MEDIAN_LENGTH), LENGTH_SIGMA, rows).astype(np.int64)
            lengths = np.clip(lengths, 2, self.max_len)
            words = np.searchsorted(self._cdf, rng.random(int(lengths.sum() - rows)))
            labels = rng.integers(0, 2, rows)
            ids = np.empty(int(lengths.sum()), dtype=dtype)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            ids[starts] = START_ID
            mask = np.ones(ids.size, dtype=bool)
            mask[starts] = False
            ids[mask] = words + FIRST_WORD_ID
            for i, row in enumerate(np.split(ids, starts[1:])):
                yield row, int(labels[i])

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        vocab = self.vocabulary(self.vocab_size)
        for ids, label in self.encoded(split, vocab):
            yield " ".join(vocab.tokens[i] for i in ids[1:]), label


def synthetic_store(
    path: str | os.PathLike[str],
    n_rows: int,
    vocab_size: int = 20000,
    max_len: int = 300,
    seed: int = 0,
) -> TokenStore:
    """A format-1 store of :class:`SyntheticCorpus` rows at ``path``, built unless already there.

    A store already at ``path`` is reused when it was built from the same parameters; anything
    else there (another store, an interrupted build) is replaced.
    """
    corpus = SyntheticCorpus(n_rows, vocab_size=vocab_size, max_len=max_len, seed=seed)
    return _cached(Path(path), corpus, vocab_size=vocab_size, max_len=max_len)


def cached_synthetic_store(
    n_rows: int, vocab_size: int = 20000, max_len: int = 300, seed: int = 0
) -> TokenStore:
    """:func:`synthetic_store` in :func:`bench_dir`, under a name made of its parameters."""
    name = f"synthetic-g{GENERATOR_VERSION}-n{n_rows}-v{vocab_size}-l{max_len}-s{seed}.zarr"
    return synthetic_store(bench_dir() / name, n_rows, vocab_size, max_len, seed)


def imdb_store(vocab_size: int = 20000, max_len: int = 300) -> TokenStore:
    """The real IMDB store (train and test) in :func:`bench_dir`, built once from
    :data:`IMDB_DIR`; a synthetic store of IMDB train's size where that folder is missing."""
    if IMDB_DIR is None:
        return cached_synthetic_store(25000, vocab_size, max_len)
    from textvae.data.discover import open_corpus

    path = bench_dir() / f"imdb-f{FORMAT}-v{vocab_size}-l{max_len}.zarr"
    return _cached(path, open_corpus(IMDB_DIR), vocab_size=vocab_size, max_len=max_len)


def _cached(path: Path, corpus: Corpus, *, vocab_size: int, max_len: int) -> TokenStore:
    try:
        store = TokenStore.open(path, vocab_size=vocab_size, max_len=max_len)
        if store.attrs.get("source") == corpus.source:
            return store
    except (TextVAEError, OSError, ValueError):
        pass
    # Built beside the target and renamed into place: a concurrent or interrupted run never
    # leaves a half-built store under the cached name.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    build_store(tmp, corpus, spec=StoreSpec(vocab_size=vocab_size, max_len=max_len), overwrite=True)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return TokenStore.open(path, vocab_size=vocab_size, max_len=max_len)
