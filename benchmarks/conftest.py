"""Shared options and fixtures of the benchmarks.

By default every benchmark runs at a small size, so that CI runs them all as plain tests
(``pytest benchmarks --benchmark-disable``) in seconds. ``--full`` switches to the sizes of
DESIGN.md ("Performance targets"), which need several GB of memory and about a minute per file.
"""

from __future__ import annotations

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run the benchmarks at full size (GBs of memory); small sizes otherwise",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Cases marked `full` only make sense at full size.
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="full-size case: run with --full")
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def full(request: pytest.FixtureRequest) -> bool:
    """Whether the run asked for full-size benchmarks (``--full``)."""
    return bool(request.config.getoption("--full"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def train_store(full: bool):
    """The store the end-to-end benchmarks read: IMDB (vocab 20,000, max_len 300) with
    ``--full``, else a small synthetic one (2,000 rows, vocab 2,000, max_len 50). Both are
    built once and cached (``$TEXTVAE_BENCH_DIR``, see ``synthetic.py``)."""
    from synthetic import cached_synthetic_store, imdb_store

    if full:
        return imdb_store(vocab_size=20000, max_len=300)
    return cached_synthetic_store(2000, vocab_size=2000, max_len=50)


_RESULTS = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def pipeline_results(request: pytest.FixtureRequest) -> dict:
    """``{(group, case): mean seconds per batch}``, filled by the pipeline benchmarks; the
    ratios between cases of one group are printed at the end of the run."""
    return request.config.stash.setdefault(_RESULTS, {})


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    if not results:
        return
    terminalreporter.section("throughput ratios (mean time per batch, same run)")
    groups: dict[str, dict[str, float]] = {}
    for (group, case), mean in results.items():
        groups.setdefault(group, {})[case] = mean
    for group, cases in groups.items():
        terminalreporter.write_line(group)
        fastest = min(cases.values())
        for case, mean in sorted(cases.items(), key=lambda kv: kv[1]):
            terminalreporter.write_line(
                f"  {case:<22} {mean * 1e3:9.2f} ms/batch  {1 / mean:8.2f} batches/s  "
                f"{mean / fastest:6.2f}x the fastest"
            )
        for ours in sorted(c for c in cases if c.startswith("textvae")):
            for peer in sorted(c for c in cases if not c.startswith("textvae")):
                terminalreporter.write_line(
                    f"  {ours} vs {peer}: {cases[peer] / cases[ours]:.2f}x the throughput"
                )
