"""Corpora and the local S3 server that several files of tests/data share (tests/conftest.py has
the rest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
from s3_server import isolate_aws, moto_server

from textvae.testing import random_reviews, write_jsonl


@pytest.fixture
def corpus(tmp_path, rng) -> Path:
    """37 train and 11 test reviews (odd sizes: partial chunks and batches)."""
    root = tmp_path / "corpus"
    write_jsonl(root / "small_train.jsonl", random_reviews(rng, 37))
    write_jsonl(root / "small_test.jsonl", random_reviews(rng, 11))
    return root


@pytest.fixture
def wordy_corpus(tmp_path, rng) -> Path:
    """Reviews of 60 words drawn from 500: chunks of 128 rows compress to about 9 KB."""
    words = [f"w{i}" for i in range(500)]

    def reviews(n: int) -> list[tuple[str, int]]:
        return [(" ".join(rng.choice(words, 60)), int(rng.integers(0, 2))) for _ in range(n)]

    root = tmp_path / "wordy"
    write_jsonl(root / "w_train.jsonl", reviews(300))
    write_jsonl(root / "w_test.jsonl", reviews(20))
    return root


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A local S3-compatible server for the whole session (no authentication)."""
    with moto_server(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path) -> str:
    """The test's environment points at the local server through AWS_ENDPOINT_URL."""
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def bucket(s3_env) -> str:
    """A fresh, empty bucket of its own for each test."""
    name = f"textvae-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True).mkdir(name)
    return name
