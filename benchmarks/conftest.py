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
