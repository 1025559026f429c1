"""Finding a corpus and opening it by its layout (:func:`open_corpus`, :func:`find_imdb`).

Apart from the readers (:mod:`textvae.data.corpus`, :mod:`textvae.data.keras_imdb`) so that
each reader module imports only the base it builds on, and this one imports them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from textvae.data.corpus import (
    ACCEPTED_LAYOUTS,
    ENV_VAR,
    KERAS_WORD_INDEX,
    AclImdbCorpus,
    Corpus,
    CsvCorpus,
    JsonlCorpus,
)
from textvae.data.format import damaged_store_problem
from textvae.data.keras_imdb import KerasImdbCorpus
from textvae.errors import CorpusError, CorpusNotFoundError, StoreFormatError

__all__ = ["find_imdb", "open_corpus"]


def _acl_root(folder: Path) -> Path | None:
    for root in (folder, folder / "aclImdb"):
        if any((root / "train" / label).is_dir() for label in ("neg", "pos")):
            return root
    return None


def open_corpus(source: str | os.PathLike[str]) -> Corpus:
    """Open a corpus, detecting its layout.

    - a folder with ``train/pos`` or ``train/neg`` (or ``aclImdb/train/...``):
      :class:`AclImdbCorpus`;
    - a folder holding ``imdb.npz``, or a ``*.npz`` file: :class:`KerasImdbCorpus`;
    - a ``*.jsonl[.gz]`` file, or a folder of ``*train*`` / ``*test*`` ones: :class:`JsonlCorpus`;
    - a ``*.csv[.gz]`` file, or a folder of them: :class:`CsvCorpus`.

    Checked in that order. Raises :class:`CorpusNotFoundError` for a missing path,
    :class:`CorpusError` for an unknown layout or a folder without a training split, and
    :class:`StoreFormatError` for a store that lost its root ``zarr.json``.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusNotFoundError(
            f"corpus {path} does not exist: pass {ACCEPTED_LAYOUTS} (or set {ENV_VAR})"
        )
    if path.is_dir():
        root = _acl_root(path)
        if root is not None:
            return AclImdbCorpus(root)
        if (path / "imdb.npz").is_file():
            return KerasImdbCorpus(path / "imdb.npz")
        files = [p for p in path.iterdir() if p.is_file()]
        for cls in (JsonlCorpus, CsvCorpus):
            if any(cls.matches(p) for p in files):
                return cls.from_path(path)
        if any((path / "test" / label).is_dir() for label in ("neg", "pos")):
            raise CorpusError(
                f"{path} has no training split: expected {path / 'train' / 'pos'} and "
                f"{path / 'train' / 'neg'} beside test/"
            )
        damaged = damaged_store_problem(path)  # its root zarr.json lost: not a corpus either
        if damaged is not None:
            raise StoreFormatError(damaged)
    elif JsonlCorpus.matches(path):
        return JsonlCorpus({"train": path})
    elif CsvCorpus.matches(path):
        return CsvCorpus({"train": path})
    elif path.name.lower().endswith(".npz"):
        return KerasImdbCorpus(path)
    raise CorpusError(f"{path}: unknown corpus layout: expected {ACCEPTED_LAYOUTS}")


def find_imdb(
    explicit: str | os.PathLike[str] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Where IMDB lies locally, or None.

    In order: ``explicit``; the ``TEXTVAE_IMDB`` environment variable; ``shared/data/imdb`` and
    ``../shared/data/imdb`` relative to ``root`` (default: the current directory; pass the
    repository root to find them wherever the caller runs); ``imdb.npz`` with
    ``imdb_word_index.json`` beside it in ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``.
    An explicit path or the variable is returned even if it does not exist, so that
    :func:`open_corpus` reports it rather than another copy being used silently.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    base = Path(root) if root is not None else Path()
    for candidate in (base / "shared/data/imdb", base / "../shared/data/imdb"):
        if candidate.is_dir():
            return candidate.resolve()
    homes = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    homes.append(Path.home() / ".keras")
    for home in homes:
        npz = home / "datasets" / "imdb.npz"
        if npz.is_file() and npz.with_name(KERAS_WORD_INDEX).is_file():
            return npz
    return None
