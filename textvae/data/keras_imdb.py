"""Keras' pre-tokenised IMDB: the ``imdb.npz`` reader (no Keras needed) and its download.

:class:`KerasImdbCorpus` reads ``imdb.npz`` (word ranks, as pickled object arrays, unpickled
with only the globals they need) and ``imdb_word_index.json`` beside it, numbering ids exactly
as ``keras.datasets.imdb.load_data`` does. Only :func:`download_keras_imdb` imports Keras, when
called (importing it costs seconds and 0.5 GB).
"""

from __future__ import annotations

import collections
import functools
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from textvae.data.corpus import (
    ACCEPTED_LAYOUTS,
    ENV_VAR,
    KERAS_WORD_INDEX,
    PROGRESS_EVERY,
    Corpus,
    not_utf8_error,
    parse_label,
)
from textvae.data.vocab import (
    FIRST_WORD_ID,
    OOV_ID,
    RESERVED,
    START_ID,
    Vocabulary,
    check_vocab_size,
)
from textvae.errors import CorpusError, CorpusNotFoundError, DatasetUnavailableError
from textvae.progress import VOCAB_STAGE, ProgressFn

__all__ = ["KERAS_ORIGIN", "KerasImdbCorpus", "download_keras_imdb"]

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_NPZ_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
_WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"

# Rebuilding the object arrays of Keras' imdb.npz needs exactly these globals (the lists and ints
# inside are pickle opcodes); refusing every other one keeps a tampered file from running code,
# which ``np.load(allow_pickle=True)`` would allow. Both numpy < 2 and >= 2 spellings.
_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _load_npz_member(path: Path, name: str) -> np.ndarray:
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            buffer = io.BytesIO(member.read())
        try:
            return np.lib.format.read_array(buffer, allow_pickle=False)
        except ValueError:  # an object array: a pickle stream after the header
            buffer.seek(0)
            major, _ = np.lib.format.read_magic(buffer)
            if major == 1:
                np.lib.format.read_array_header_1_0(buffer)
            else:  # 2.0 and 3.0 share the header layout
                np.lib.format.read_array_header_2_0(buffer)
            return _ArrayUnpickler(buffer).load()
    except (zipfile.BadZipFile, KeyError, ValueError, pickle.UnpicklingError, EOFError) as e:
        raise CorpusError(
            f"{path}: cannot read {name} ({e}): expected Keras' imdb.npz; download it again"
        ) from None


def _word_ranks(seq: Any, where: str) -> list[int]:
    """One review of Keras' imdb.npz as a list of word ranks (integers >= 0)."""
    ranks = np.asarray(seq) if isinstance(seq, (list, tuple, np.ndarray)) else None
    if ranks is None or ranks.ndim != 1 or (ranks.size and ranks.dtype.kind not in "iu"):
        raise CorpusError(
            f"{where}: expected a list of integer word ranks, got {type(seq).__name__}"
            + (f" of {ranks.dtype} {ranks.shape}" if ranks is not None else "")
            + ": expected Keras' imdb.npz; download it again"
        )
    if ranks.size and ranks.min() < 0:
        raise CorpusError(
            f"{where}: negative word rank {int(ranks.min())}: expected Keras' imdb.npz; "
            "download it again"
        )
    return ranks.tolist()


class KerasImdbCorpus(Corpus):
    """Keras' pre-tokenised IMDB: ``imdb.npz`` and ``imdb_word_index.json``.

    The npz holds raw word ranks (``the`` = 1); :meth:`encoded` numbers them exactly as
    ``keras.datasets.imdb.load_data(num_words=vocab.size)`` does: ``[1] + [rank + 3, ...]``,
    every id ``>= vocab.size`` replaced by 2. Reviews stay in the file's order (``load_data``
    shuffles them with seed 113). Reading needs no Keras. The npz stores each split as one
    pickled object array, so a split is held in memory while it is read (~250 MB for IMDB
    train); :meth:`reviews` yields the words joined by spaces, for inspection.
    """

    def __init__(
        self,
        npz_path: str | os.PathLike[str],
        word_index_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.npz_path = Path(npz_path)
        if not self.npz_path.is_file():
            raise CorpusNotFoundError(
                f"Keras IMDB file {self.npz_path} does not exist: pass {ACCEPTED_LAYOUTS}"
            )
        self.word_index_path = (
            Path(word_index_path)
            if word_index_path is not None
            else self.npz_path.with_name(KERAS_WORD_INDEX)
        )
        if not self.word_index_path.is_file():
            raise CorpusNotFoundError(
                f"Keras word index {self.word_index_path} does not exist: put "
                f"{KERAS_WORD_INDEX} beside {self.npz_path.name}"
            )
        try:
            with zipfile.ZipFile(self.npz_path) as archive:
                members = set(archive.namelist())
        except zipfile.BadZipFile as e:
            raise CorpusError(
                f"{self.npz_path} is not a valid .npz ({e}): expected Keras' imdb.npz"
            ) from None
        splits = tuple(s for s in ("train", "test") if {f"x_{s}.npy", f"y_{s}.npy"} <= members)
        if "train" not in splits:
            raise CorpusError(
                f"{self.npz_path} has no training split: expected arrays x_train and y_train"
            )
        self.splits = splits
        self.source = f"Keras imdb {self.npz_path}"

    def _where(self, split: str) -> str:
        return f"{self.npz_path} (x_{split})"

    def with_tokenizer(self, tokenizer: Callable[[str], list[str]]) -> Corpus:
        """Refused: Keras' imdb.npz holds word ranks, already tokenised."""
        raise CorpusError(
            f"{self.source} is already tokenised (Keras' word ranks): a tokenizer does not apply; "
            "pass the reviews' texts (JSONL, CSV, aclImdb) to use your own tokenizer"
        )

    @functools.cached_property
    def word_index(self) -> dict[str, int]:
        """Keras' word -> rank mapping (``the`` = 1)."""
        try:
            with open(self.word_index_path, "rb") as f:
                raw = f.read()
            index = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise not_utf8_error(str(self.word_index_path), e.start, raw[e.start]) from None
        except json.JSONDecodeError as e:
            raise CorpusError(
                f"{self.word_index_path}:{e.lineno}: invalid JSON ({e.msg}): expected Keras' "
                f"{KERAS_WORD_INDEX}"
            ) from None
        if not isinstance(index, dict):
            raise CorpusError(
                f"{self.word_index_path} holds a JSON {type(index).__name__}, not an object of "
                f"word -> rank: expected Keras' {KERAS_WORD_INDEX}"
            )
        return index

    def _ranks(self, split: str) -> Iterator[tuple[list[int], int]]:
        """(raw ranks, label) of every review of ``split``."""
        for i, (seq, label) in enumerate(self.raw_reviews(split)):
            yield self._checked(split, i, seq, label)

    def raw_reviews(self, split: str) -> Iterator[tuple[Any, Any]]:
        """(word ranks, label) of every review of ``split`` as the npz holds them, unchecked:
        the reading half of :meth:`encoded`, whose other half is :meth:`encode_raw` (parallel
        ingest reads here and encodes in its workers)."""
        self._check_split(split)
        x = _load_npz_member(self.npz_path, f"x_{split}")
        y = _load_npz_member(self.npz_path, f"y_{split}")
        if len(x) != len(y):
            raise CorpusError(
                f"{self.npz_path}: x_{split} has {len(x)} reviews but y_{split} {len(y)} labels"
            )
        if len(x) == 0:
            raise CorpusError(f"{self._where(split)} holds no reviews in split {split!r}")
        yield from zip(x, y.tolist(), strict=True)

    def _checked(self, split: str, i: int, seq: Any, label: Any) -> tuple[list[int], int]:
        """Review ``i`` of :meth:`raw_reviews` as (ranks, label), or the error naming it."""
        return (
            _word_ranks(seq, f"{self.npz_path} (x_{split}[{i}])"),
            parse_label(label, f"{self.npz_path} (y_{split})"),
        )

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        words = {rank: word for word, rank in self.word_index.items()}
        for seq, label in self._ranks(split):
            yield " ".join(words.get(r, RESERVED[OOV_ID]) for r in seq), label

    def count_words(
        self, split: str = "train", progress: ProgressFn | None = None
    ) -> collections.Counter[str]:
        """Word counts of ``split`` (words of the word index; unknown ranks as ``<oov>``);
        ``progress`` as for :meth:`Corpus.count_words`."""
        ranks: collections.Counter[int] = collections.Counter()
        n = 0
        for n, (seq, _) in enumerate(self._ranks(split), 1):
            ranks.update(seq)
            if progress is not None and n % PROGRESS_EVERY == 0:
                progress(VOCAB_STAGE, n)
        if progress is not None:
            progress(VOCAB_STAGE, n)
        words = {rank: word for word, rank in self.word_index.items()}
        counts: collections.Counter[str] = collections.Counter()
        for rank, count in ranks.items():
            counts[words.get(rank, RESERVED[OOV_ID])] += count
        return counts

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> Vocabulary:
        """Keras' own vocabulary: :meth:`Vocabulary.from_word_index` of the word index
        (``progress(VOCAB_STAGE, 0)`` is called once: no words are counted)."""
        check_vocab_size(vocab_size)
        try:
            vocab = Vocabulary.from_word_index(self.word_index, vocab_size)
        except ValueError as err:
            raise CorpusError(
                f"{self.word_index_path}: {err}: expected Keras' {KERAS_WORD_INDEX}"
            ) from None
        if progress is not None:
            progress(VOCAB_STAGE, 0)
        return vocab

    def encoded(self, split: str, vocab: Vocabulary) -> Iterator[tuple[list[int], int]]:
        """(ids, label) as ``keras.datasets.imdb.load_data(num_words=vocab.size)`` gives them
        (in file order): ``[1] + [rank + 3 ...]`` with every id ``>= vocab.size`` set to 2."""
        self.check_vocab(vocab)
        for i, raw in enumerate(self.raw_reviews(split)):
            yield self.encode_raw(split, i, [raw], vocab)[0]

    def encode_raw(
        self, split: str, start: int, raw: list[tuple[Any, Any]], vocab: Vocabulary
    ) -> list[tuple[list[int], int]]:
        """(ids, label) of reviews ``start, start + 1, ...`` of ``split`` from their
        :meth:`raw_reviews`, as :meth:`encoded` gives them (checked; errors name the review)."""
        cap = vocab.size - FIRST_WORD_ID  # rank r is kept when r + 3 < size
        out = []
        for i, (seq, raw_label) in enumerate(raw, start):
            ranks, label = self._checked(split, i, seq, raw_label)
            ids = [START_ID]
            ids.extend([r + FIRST_WORD_ID if r < cap else OOV_ID for r in ranks])
            out.append((ids, label))
        return out

    def tokenizes_in_workers(self) -> bool:
        """False: the npz holds word ranks, not texts to tokenise."""
        return False

    def encodes_raw_in_workers(self) -> bool:
        """True unless a subclass changes how reviews are counted or encoded: workers encode
        chunks of :meth:`raw_reviews` with :meth:`encode_raw` (the per-review checks and the
        id mapping are most of this corpus's cost)."""
        return self._encoding_owner is KerasImdbCorpus

    def check_vocab(self, vocab: Vocabulary) -> None:
        """Refuse a vocabulary that is not Keras' own (built by :meth:`vocabulary`): the raw
        ranks are numbered as Keras numbers them, which only its vocabulary decodes.

        Raises
        ------
        CorpusError
            One of the first ten word ids differs from Keras' word index.
        """
        words = {rank: word for word, rank in self.word_index.items() if rank <= 10}
        for i in range(FIRST_WORD_ID, min(vocab.size, FIRST_WORD_ID + 10)):
            expected = words.get(i - FIRST_WORD_ID)
            if expected is not None and vocab.tokens[i] != expected:
                raise CorpusError(
                    f"{self.source}: the vocabulary is not Keras' (id {i} is "
                    f"{vocab.tokens[i]!r}, Keras has {expected!r}): build it with "
                    "corpus.vocabulary(vocab_size)"
                )


def download_keras_imdb(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download Keras' ``imdb.npz`` and ``imdb_word_index.json`` with ``keras.utils.get_file``
    (into ``cache_dir``/datasets, default ``~/.keras/datasets``); returns the npz's path.

    Raises :class:`DatasetUnavailableError` when that fails (offline, Keras missing, ...).
    """
    try:
        # Lazy: importing Keras costs seconds and 0.5 GB.
        import keras

        kwargs = {"cache_dir": os.fspath(cache_dir)} if cache_dir is not None else {}
        npz = keras.utils.get_file(
            fname="imdb.npz",
            origin=f"{KERAS_ORIGIN}imdb.npz",
            file_hash=_NPZ_HASH,
            **kwargs,
        )
        keras.utils.get_file(
            fname=KERAS_WORD_INDEX,
            origin=f"{KERAS_ORIGIN}{KERAS_WORD_INDEX}",
            file_hash=_WORD_INDEX_HASH,
            **kwargs,
        )
    except Exception as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise DatasetUnavailableError(
            f"cannot download Keras IMDB ({reason}): point textvae at a local copy with "
            f"{ENV_VAR}=PATH or --data PATH ({ACCEPTED_LAYOUTS})"
        ) from e
    return Path(npz)
