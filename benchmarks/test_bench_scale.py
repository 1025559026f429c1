"""Ingest at scale (``scale_ingest.py``), at a size CI runs in seconds.

The figures of the docs' "Scaling out" page come from ``python benchmarks/scale_ingest.py
--reviews 10000000`` (10 million reviews; about half an hour on a 2-core machine). Here the
same code path runs on 2,000 reviews, with 1 and 2 workers, and its report is checked: the same
objects written whatever the workers, rates and memory measured.
"""

from __future__ import annotations

import json

import pytest
import scale_ingest


@pytest.mark.timeout(300)
def test_scale_ingest_reports_rates_memory_and_objects(tmp_path, monkeypatch, benchmark):
    monkeypatch.setenv("TEXTVAE_BENCH_DIR", str(tmp_path))
    out = tmp_path / "results.json"

    def run():
        return scale_ingest.main(["--reviews", "2000", "--workers", "1", "2", "--json", str(out)])

    one, two = benchmark.pedantic(run, rounds=1, iterations=1)
    assert json.loads(out.read_text())[1]["workers"] == 2
    assert one.objects == two.objects  # the same store, whatever the workers
    # 2,000 rows in chunks of 1,024: two chunk files and the array's zarr.json.
    assert one.objects["train/tokens"] == 3
    assert one.words > one.reviews > 0 and one.reviews_per_second > 0
    assert 0 < one.peak_process_rss_mb <= one.peak_rss_mb
    assert two.peak_rss_mb >= two.peak_process_rss_mb  # the tree's sum, workers included
    benchmark.extra_info.update(
        {f"workers_{r.workers}_reviews_per_second": r.reviews_per_second for r in (one, two)}
    )


def test_synthetic_corpus_is_written_once(tmp_path):
    folder, words = scale_ingest.write_corpus(tmp_path / "c", 50, median_words=5)
    lines = (folder / "reviews_train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50
    assert words == sum(len(json.loads(line)["text"].split()) for line in lines)
    (folder / "reviews_train.jsonl").write_text("changed")
    assert scale_ingest.write_corpus(tmp_path / "c", 50, median_words=5) == (folder, words)
    assert (folder / "reviews_train.jsonl").read_text() == "changed"  # reused, not rewritten
