"""How much sentiment the text a run trains on holds: a logistic regression on binary bags of
words of a token store's rows, scored on the whole test split (README, "Results").

    python benchmarks/bow_baseline.py STORE --rows 8192 [--l2 3e-3] [--steps 300]

STORE is a token store (``textvae-ingest``, or the cache folder ``textvae-train`` fills); its
``max_len`` says how many ids of each review count. ``--rows`` training reviews are drawn
(seeded) from the train split. The L2 weight is chosen by the caller, looking at the test split:
an optimistic reference, not a model. NumPy only; about 2 GB of memory at 23,750 rows.
"""

from __future__ import annotations

import argparse

import numpy as np

from textvae.data.store import TokenStore


def bags(ids: np.ndarray, vocab_size: int, ignore: tuple[int, ...]) -> np.ndarray:
    """``(rows, vocab_size)`` float32, 1 where the row holds the id (``ignore``d ids stay 0)."""
    x = np.zeros((len(ids), vocab_size), np.float32)
    x[np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()] = 1
    x[:, list(ignore)] = 0
    return x


def fit(x: np.ndarray, y: np.ndarray, l2: float, steps: int, lr: float = 0.01):
    """Full-batch Adam on the mean logistic loss + ``l2`` / 2 * |w|^2: ``(w, b)``."""
    w = np.zeros(x.shape[1], np.float32)
    b = 0.0
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = x.T @ (p - y) / len(y) + l2 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        b -= lr * float((p - y).mean())
    return w, b


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store")
    parser.add_argument("--rows", type=int, default=8192, help="training reviews")
    parser.add_argument("--l2", type=float, default=3e-3)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    store = TokenStore.open(args.store)
    ignore = tuple({store.pad_id, store.start_id, store.oov_id})
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(store.num_rows("train"), args.rows, replace=False))
    x = bags(store.read("train", rows).astype(np.int64), store.vocab_size, ignore)
    w, b = fit(x, store.labels("train", rows).astype(np.float32), args.l2, args.steps)
    del x
    correct = total = 0
    for start in range(0, store.num_rows("test"), 2500):
        part = slice(start, start + 2500)
        scores = bags(store.read("test", part).astype(np.int64), store.vocab_size, ignore) @ w
        labels = store.labels("test", part)
        correct += int(np.count_nonzero((scores + b > 0) == (labels > 0)))
        total += len(labels)
    print(
        f"{args.rows:,} train rows of {store.max_len} ids, L2 {args.l2:g}: "
        f"test accuracy {correct / total:.4f} on {total:,} reviews"
    )


if __name__ == "__main__":
    main()
