"""Choose the token store's codec by measurement: size and read times of IMDB train's ids.

    python benchmarks/store_codecs.py [STORE]     # default: build/reuse the IMDB bench store

Writes the (N, L) train ids of STORE again with each candidate codec and chunk size into a
temporary folder and prints on-disk size, write time, and the time to read 64 contiguous rows
and 64 random rows (mean of 50 / 20 reads). The README's "Store codec" table comes from here.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

CANDIDATES = {
    "none": None,
    "zstd level 0 (zarr's default)": ZstdCodec(level=0),
    "zstd level 3": ZstdCodec(level=3),
    "blosc zstd 3 + shuffle": BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
    "blosc zstd 5 + bitshuffle": BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
    "blosc lz4 5 + shuffle": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
}


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def measure(ids: np.ndarray, rng: np.random.Generator) -> None:
    n, max_len = ids.shape
    print(f"ids {ids.shape} {ids.dtype}, {ids.nbytes / 1e6:.2f} MB raw")
    print("| codec | chunk rows | size MB | write s | 64 contiguous rows ms | 64 random rows ms |")
    print("|---|---|---|---|---|---|")
    tmp = tempfile.mkdtemp()
    try:
        for name, codec in CANDIDATES.items():
            for chunk in (256, 1024):
                path = os.path.join(tmp, "c.zarr")
                shutil.rmtree(path, ignore_errors=True)
                a = zarr.create_array(
                    path,
                    shape=ids.shape,
                    dtype=ids.dtype,
                    chunks=(chunk, max_len),
                    compressors=None if codec is None else [codec],
                )
                t = time.perf_counter()
                a[:] = ids
                write = time.perf_counter() - t
                t = time.perf_counter()
                for _ in range(50):
                    s = int(rng.integers(0, n - 64))
                    a[s : s + 64]
                contiguous = (time.perf_counter() - t) / 50
                t = time.perf_counter()
                for _ in range(20):
                    a.get_orthogonal_selection((np.sort(rng.choice(n, 64, replace=False)),))
                scattered = (time.perf_counter() - t) / 20
                print(
                    f"| {name} | {chunk} | {_size(path) / 1e6:.2f} | {write:.2f} | "
                    f"{contiguous * 1e3:.1f} | {scattered * 1e3:.1f} |"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    from textvae.data.store import TokenStore

    if argv:
        store = TokenStore.open(argv[0])
    else:
        sys.path.insert(0, os.path.dirname(__file__))
        from synthetic import imdb_store

        store = imdb_store(vocab_size=20000, max_len=300)
    measure(store.read("train", slice(None)), np.random.default_rng(0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
