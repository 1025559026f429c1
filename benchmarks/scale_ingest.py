"""Ingest at scale: a synthetic corpus of millions of reviews, ingested with 1 and 2 workers.

The corpus is written to disk by this script (JSONL, not committed, cached under
``$TEXTVAE_BENCH_DIR``): reviews of words drawn from a Zipf-like distribution over 50,000
made-up words, lengths log-normal around ``--median-words``. Each build runs in a fresh
``textvae-ingest`` process; the script samples the RSS of that process and its workers every
0.2 s, and counts the objects (files) each array of the store was written as. What a line
reports: reviews/s, words/s (the rate that carries to reviews of another length), peak RSS of
the whole process tree and of its largest process, objects per array, store size.

    python benchmarks/scale_ingest.py --reviews 10000000            # the docs' scale figures
    python benchmarks/scale_ingest.py --reviews 20000 --workers 1 2  # seconds: a smoke test

``benchmarks/test_bench_scale.py`` runs the smoke size in CI. The docs page "Scaling out"
carries the full run's rates to 100 million and a billion reviews.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Words of the synthetic vocabulary (the store keeps the 20,000 most frequent).
WORDS = 50_000
DEFAULT_BENCH_DIR = "/tmp/textvae-bench"


@dataclass(frozen=True)
class ScaleResult:
    """One ingest of the synthetic corpus."""

    reviews: int
    words: int
    workers: int
    seconds: float
    reviews_per_second: float
    words_per_second: float
    peak_rss_mb: float  # the process tree's sum at its peak
    peak_process_rss_mb: float  # the largest single process
    objects: dict[str, int]  # files per array of the store, e.g. {"train/tokens": 10}
    store_mb: float


def bench_dir() -> Path:
    return Path(os.environ.get("TEXTVAE_BENCH_DIR", DEFAULT_BENCH_DIR))


def write_corpus(
    folder: Path, reviews: int, *, median_words: int = 60, seed: int = 0
) -> tuple[Path, int]:
    """Write ``reviews`` train reviews (and 1% as test) as JSONL into ``folder`` and return
    it with the count of train words. Written once: a folder with a ``done`` marker is reused."""
    marker = folder / "done.json"
    if marker.is_file():
        return folder, json.loads(marker.read_text())["words"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    vocab = [f"w{r}" for r in range(WORDS)]
    weights = 1.0 / np.arange(1, WORDS + 1) ** 1.1
    cdf = np.cumsum(weights / weights.sum())
    total_words = 0
    for split, n in (("train", reviews), ("test", max(1, reviews // 100))):
        with open(folder / f"reviews_{split}.jsonl", "w", encoding="utf-8") as f:
            for start in range(0, n, 10_000):
                count = min(10_000, n - start)
                lengths = np.maximum(
                    1, rng.lognormal(np.log(median_words), 0.6, size=count).astype(int)
                )
                ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), WORDS - 1)
                words = [vocab[i] for i in ids.tolist()]
                labels = rng.integers(0, 2, size=count).tolist()
                ends = np.cumsum(lengths).tolist()
                # The words need no JSON escaping (letters and digits): format the records.
                f.writelines(
                    f'{{"text": "{" ".join(words[a:b])}", "label": {y}}}\n'
                    for a, b, y in zip([0, *ends[:-1]], ends, labels, strict=True)
                )
                if split == "train":
                    total_words += int(lengths.sum())
    marker.write_text(json.dumps({"reviews": reviews, "words": total_words}))
    return folder, total_words


def _tree_rss(pid: int) -> tuple[int, int]:
    """(sum, max) RSS in bytes of process ``pid`` and its descendants, from /proc."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    sizes = []
    for p in procs:
        try:
            sizes.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return sum(sizes), max(sizes, default=0)


def count_objects(store: Path) -> dict[str, int]:
    """Files under each array of a local store (chunks or shards, plus its zarr.json)."""
    counts = {}
    for meta in sorted(store.rglob("zarr.json")):
        array = meta.parent
        if json.loads(meta.read_text()).get("node_type") != "array":
            continue
        counts[str(array.relative_to(store))] = sum(1 for p in array.rglob("*") if p.is_file())
    return counts


def ingest(corpus: Path, words: int, reviews: int, workers: int, out: Path) -> ScaleResult:
    """One ``textvae-ingest`` of ``corpus`` into ``out`` with ``workers`` processes."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-c",
        "import sys; from textvae.cli import ingest_main; sys.exit(ingest_main())",
        str(corpus),
        str(out),
        *("--vocab", "20000", "--max-len", "300", "--workers", str(workers), "--quiet"),
    ]
    errors = out.with_name(out.name + ".stderr")
    start = time.perf_counter()
    with open(errors, "w+", encoding="utf-8") as stderr:
        with subprocess.Popen(command, stderr=stderr) as proc:
            peak_sum = peak_one = 0
            while proc.poll() is None:
                total, largest = _tree_rss(proc.pid)
                peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
                time.sleep(0.2)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        message = stderr.read()
    errors.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"textvae-ingest failed ({proc.returncode}): {message[-2000:]}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ScaleResult(
        reviews=reviews,
        words=words,
        workers=workers,
        seconds=round(seconds, 2),
        reviews_per_second=round(reviews / seconds, 1),
        words_per_second=round(words / seconds),
        peak_rss_mb=round(peak_sum / 2**20, 1),
        peak_process_rss_mb=round(peak_one / 2**20, 1),
        objects=count_objects(out),
        store_mb=round(size / 2**20, 2),
    )


def main(argv: list[str] | None = None) -> list[ScaleResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=10_000_000, help="train reviews")
    parser.add_argument("--median-words", type=int, default=60, help="median words a review")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    args = parser.parse_args(argv)
    root = bench_dir() / f"scale-corpus-n{args.reviews}-m{args.median_words}"
    started = time.perf_counter()
    corpus, words = write_corpus(root, args.reviews, median_words=args.median_words)
    print(f"corpus: {corpus} ({words:,} train words; {time.perf_counter() - started:.0f} s)")
    results = []
    for workers in args.workers:
        out = bench_dir() / f"scale-store-n{args.reviews}-w{workers}.zarr"
        result = ingest(corpus, words, args.reviews, workers, out)
        results.append(result)
        print(json.dumps(asdict(result)), flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if len(results) > 1:
        base = results[0].seconds
        for r in results[1:]:
            print(f"{r.workers} workers: {base / r.seconds:.2f}x the speed of {results[0].workers}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results


if __name__ == "__main__":
    main()
