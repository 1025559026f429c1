"""IMDB's layout in small, for the tests of groups: JSONL files with ``file`` fields and the
metadata tarball of review URLs beside them (``imdb_like``)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from textvae.data.corpus import IMDB_METADATA
from textvae.testing import random_reviews


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def movie_url(movie: int) -> str:
    return f"http://www.imdb.com/title/tt{movie:07d}/usercomments"


def imdb_like(root: Path, rng: np.random.Generator, counts: dict[str, int]) -> dict[str, list]:
    """IMDB's layout in small: ``imdb_<split>.jsonl`` with ``file`` fields (negative reviews,
    then positive, each by id) and the metadata tarball of URL lists beside them. Returns the
    movie (title id) of every row of each split."""
    root.mkdir(parents=True, exist_ok=True)
    movies_of: dict[str, list] = {}
    members: dict[str, str] = {}
    for split, n in counts.items():
        records, movies = [], []
        for sub in ("neg", "pos"):
            listed = [int(m) for m in rng.integers(1, 6, size=n)]  # 5 movies: shared ones
            members[f"aclImdb/{split}/urls_{sub}.txt"] = "".join(
                movie_url(m) + "\n" for m in listed
            )
            for i, (text, _) in enumerate(random_reviews(rng, n)):
                label = int(sub == "pos")
                records.append(
                    {"text": text, "label": label, "id": i, "file": f"{split}/{sub}/{i}_7.txt"}
                )
                movies.append(f"tt{listed[i]:07d}")
        write_records(root / f"imdb_{split}.jsonl", records)
        movies_of[split] = movies
    with tarfile.open(root / IMDB_METADATA, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return movies_of
