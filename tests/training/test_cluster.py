"""textvae.training.cluster.worker_info: TF_CONFIG parsing (plain JSON, no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from textvae.training.cluster import worker_info


def _cluster(n: int) -> dict:
    return {"worker": [f"127.0.0.1:{2000 + i}" for i in range(n)]}


# -- worker_info ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tf_config", "expected"),
    [
        pytest.param("", (0, 1, True), id="unset"),
        pytest.param({"cluster": {}}, (0, 1, True), id="no-cluster"),
        pytest.param(
            {"cluster": _cluster(3), "task": {"type": "worker", "index": 0}}, (0, 3, True), id="w0"
        ),
        pytest.param(
            {"cluster": _cluster(3), "task": {"type": "worker", "index": 2}}, (2, 3, False), id="w2"
        ),
        pytest.param(
            {"cluster": {"chief": ["h:1"], **_cluster(2)}, "task": {"type": "chief", "index": 0}},
            (0, 3, True),
            id="chief",
        ),
        pytest.param(
            {"cluster": {"chief": ["h:1"], **_cluster(2)}, "task": {"type": "worker", "index": 0}},
            (1, 3, False),
            id="worker-after-chief",
        ),
    ],
)
def test_worker_info(tf_config, expected):
    assert worker_info(tf_config) == expected


def test_worker_info_reads_the_environment(monkeypatch):
    config = {"cluster": _cluster(2), "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert worker_info() == (1, 2, False)
    monkeypatch.delenv("TF_CONFIG")
    assert worker_info() == (0, 1, True)


@pytest.mark.parametrize(
    ("tf_config", "match"),
    [
        pytest.param("{not json", "must be JSON", id="not-json"),
        pytest.param("[1]", "JSON object", id="not-object"),
        pytest.param({"cluster": {**_cluster(2), "ps": ["h:1"]}}, "chief` and `worker", id="ps"),
        pytest.param(
            {"cluster": _cluster(2), "task": {"type": "worker", "index": 2}}, r"\[0, 2\)", id="idx"
        ),
        pytest.param(
            {"cluster": _cluster(2), "task": {"type": "evaluator", "index": 0}},
            "not in the cluster",
            id="evaluator",
        ),
    ],
)
def test_worker_info_refuses_bad_configs(tf_config, match):
    with pytest.raises(ValueError, match=match):
        worker_info(tf_config)


def test_the_distributed_module_still_exports_worker_info():
    from textvae.training import distributed

    assert distributed.worker_info is worker_info
