"""Console entry points: argument parsing and console output only.

Each ``*_main(argv=None) -> int`` builds a config, calls one library function, and turns a
:class:`~textvae.errors.TextVAEError` into one line on stderr and exit code 2. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from textvae.errors import TextVAEError

__all__ = ["ingest_main", "sample_main", "train_main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class Progress:
    """Progress on stderr: one rewritten line on a terminal, a line per stage otherwise."""

    def __init__(self, stream=None, min_interval: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._stage: str | None = None
        self._last = 0.0
        self._count = 0
        self._start = time.perf_counter()

    def __call__(self, stage: str, done: int) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            self.close()
            self._stage, self._start = stage, now
        self._count = done
        if self.tty and now - self._last >= self.min_interval:
            self._last = now
            self.stream.write(f"\r{self._line(now)}")
            self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = self._count / elapsed if elapsed > 0 else 0.0
        return f"{self._stage}: {self._count:,} reviews ({elapsed:.1f} s, {rate:,.0f}/s)"

    def close(self) -> None:
        if self._stage is not None:
            self.stream.write(("\r" if self.tty else "") + self._line(time.perf_counter()) + "\n")
            self.stream.flush()
            self._stage = None


def _run(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except TextVAEError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- textvae-ingest --------------------------------------------------------------------------
def _ingest_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="textvae-ingest",
        description="Build a token store (chunked zarr v3) from a labelled review corpus.",
    )
    p.add_argument(
        "source",
        help="aclImdb folder, JSONL/JSONL.gz or CSV file (or a folder with train and test files), "
        "or a Keras imdb.npz",
    )
    p.add_argument("store", help="where to write the store: a local path or an s3:// URL")
    p.add_argument(
        "--vocab",
        type=int,
        default=20000,
        help="vocabulary size, reserved ids 0-2 included (default 20000)",
    )
    p.add_argument(
        "--max-len",
        type=int,
        default=300,
        help="ids per review after padding/truncation (default 300)",
    )
    p.add_argument(
        "--padding",
        choices=("pre", "post"),
        default="pre",
        help="where padding goes (default pre, as Keras)",
    )
    p.add_argument(
        "--truncating",
        choices=("pre", "post"),
        default="pre",
        help="which end of a long review is cut (default pre: keep the end)",
    )
    p.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per zarr chunk (default 1024)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at STORE")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def ingest_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-ingest SOURCE STORE --vocab N --max-len L``."""
    args = _ingest_parser().parse_args(argv)

    def run() -> int:
        from textvae.corpus import open_corpus
        from textvae.store import DEFAULT_CHUNK_ROWS, build_store

        progress = None if args.quiet else Progress()
        start = time.perf_counter()
        corpus = open_corpus(args.source)
        try:
            store = build_store(
                args.store,
                corpus,
                vocab_size=args.vocab,
                max_len=args.max_len,
                padding=args.padding,
                truncating=args.truncating,
                chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
                overwrite=args.overwrite,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.close()
        rows = ", ".join(f"{s} {store.num_rows(s):,}" for s in store.splits)
        print(
            f"wrote {store.path}: {rows} reviews, vocab {store.vocab_size:,}, "
            f"max_len {store.max_len} in {time.perf_counter() - start:.1f} s"
        )
        return 0

    return _run(run)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-train``: see ``textvae-train --help``."""
    from textvae.train_cli import main

    return _run(lambda: main(argv))


def sample_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-sample``: reconstruct, sample from the prior, interpolate."""
    from textvae.sample_cli import main

    return _run(lambda: main(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(ingest_main())
