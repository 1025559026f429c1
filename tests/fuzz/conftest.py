"""Fixtures of the fuzz: the small world every test draws from, and the fuzz's report.

Set ``TEXTVAE_FUZZ_REPORT=PATH`` to write the counts (inputs tried, distinct errors, outcomes)
as JSON at the end of the session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fuzz_harness import TALLY, World


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """Built once per process: every fuzz file shares it, as the one fuzz file did."""
    return World(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="session", autouse=True)
def _report():
    yield
    path = os.environ.get("TEXTVAE_FUZZ_REPORT")
    if path:
        # Under pytest-xdist each worker counts its own files: one report per worker.
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:
            path = str(Path(path).with_suffix(f".{worker}{Path(path).suffix}"))
        report = {
            "inputs_tried": sum(TALLY["tried"].values()),
            "per_test": dict(TALLY["tried"]),
            "distinct_errors": len(TALLY["errors"]),
            "outcomes": dict(TALLY["outcomes"]),
            "errors": dict(TALLY["errors"].most_common()),
        }
        Path(path).write_text(json.dumps(report, indent=2))
