"""The memory budget (textvae.batching.memory): the default queue, the warning with its
arithmetic, the refusal beyond physical memory, and MemoryOptions."""

from __future__ import annotations

import warnings

import pytest

import textvae.batching.memory
from textvae.batching import MemoryOptions, OneHotSequence
from textvae.batching.memory import default_queue_size
from textvae.errors import InvalidArgumentError, MemoryBudgetWarning

BATCH_BYTES = 8 * 16 * 12 * 4  # (8, 16, 12) float32


@pytest.mark.parametrize(
    ("budget", "queue"), [(6 * BATCH_BYTES, 3), (4 * BATCH_BYTES, 1), (100 * BATCH_BYTES, 10)]
)
def test_default_queue_fits_the_budget(small_store, budget, queue):
    seq = OneHotSequence(
        small_store, "train", 8, outputs="onehot", memory=MemoryOptions(memory_budget=budget)
    )
    assert seq.max_queue_size == queue
    in_flight = seq.max_queue_size + seq.workers + 2
    assert in_flight * BATCH_BYTES <= budget or queue == 1


def test_default_queue_at_vocab_20000():
    """The issue's case: (64, 300, 20000) float32, 1.5 GB a batch, 2 workers: Keras' 10 would
    allow 14 batches (21 GB); a 6 GiB budget gives a queue of 1 (5 batches)."""
    batch = 64 * 300 * 20000 * 4
    assert default_queue_size(batch, 6 * 2**30, workers=2) == 1
    assert default_queue_size(batch // 4, 3 * 2**30, workers=2) == 8 - 2 - 2  # uint8
    assert default_queue_size(batch // 4, 6 * 2**30, workers=2) == 10  # at most Keras' 10


def test_over_budget_warns_once_with_the_arithmetic(small_store):
    with pytest.warns(MemoryBudgetWarning) as record:
        OneHotSequence(
            small_store,
            "train",
            8,
            max_queue_size=10,
            memory=MemoryOptions(memory_budget=10 * BATCH_BYTES),
        )
    assert len(record) == 1
    text = str(record[0].message)
    assert "up to 13 batches are alive at once (max_queue_size=10 + workers=1 + 2" in text
    assert "memory_budget=61,440 bytes" in text and "dtype='uint8'" in text
    # Two one-hot arrays a batch count twice.
    with pytest.warns(MemoryBudgetWarning, match="2 one-hot arrays of shape"):
        OneHotSequence(
            small_store,
            "train",
            8,
            outputs={"a": "onehot", "b": "next_onehot"},
            max_queue_size=3,
            memory=MemoryOptions(memory_budget=10 * BATCH_BYTES),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sparse targets hold no one-hot batch
        seq = OneHotSequence(
            small_store, "train", 8, targets="sparse", memory=MemoryOptions(memory_budget=1)
        )
    assert seq.max_queue_size == 10


def test_beyond_physical_memory_is_refused(small_store, monkeypatch):
    monkeypatch.setattr(textvae.batching.memory, "physical_memory", lambda: 20 * BATCH_BYTES)
    with pytest.raises(InvalidArgumentError, match=r"more than this machine's .* of memory"):
        OneHotSequence(
            small_store,
            "train",
            8,
            max_queue_size=30,
            memory=MemoryOptions(memory_budget=2**40),
        )


# -- the container's limit (cgroup v1 and v2), which SC_PHYS_PAGES does not see ----------------
GIB = 2**30


def _cgroup(tmp_path, lines: str, files: dict[str, str]):
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(lines)
    for name, text in files.items():
        path = tmp_path / "cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "cgroup", proc


def test_cgroup_v2_limit_is_read_from_the_group_and_its_parents(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        "0::/kubepods/pod1/box\n",
        {
            "kubepods/pod1/box/memory.max": "max\n",
            "kubepods/pod1/memory.max": f"{3 * GIB}\n",
            "kubepods/memory.max": f"{8 * GIB}\n",
        },
    )
    assert textvae.batching.memory.cgroup_memory_limit(root, proc) == 3 * GIB


def test_cgroup_v1_limit_and_its_no_limit_value(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        "4:memory:/docker/abc\n3:cpuset:/\n",
        {
            "memory/docker/abc/memory.limit_in_bytes": f"{2 * GIB}\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
        },
    )
    assert textvae.batching.memory.cgroup_memory_limit(root, proc) == 2 * GIB


def test_cgroup_v1_container_reads_the_mount_root_when_its_path_is_not_mounted(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        "9:cpu,memory:/docker/abc\n",
        {"memory/memory.limit_in_bytes": f"{GIB}\n"},
    )
    assert textvae.batching.memory.cgroup_memory_limit(root, proc) == GIB


@pytest.mark.parametrize(
    ("lines", "files"),
    [
        ("0::/\n", {"memory.max": "max\n"}),  # v2 without a limit
        ("0::/user.slice\n", {}),  # nothing readable
        ("3:cpuset:/\n", {"memory/memory.limit_in_bytes": f"{GIB}\n"}),  # no memory controller
    ],
    ids=["v2-max", "unreadable", "no-memory-controller"],
)
def test_no_cgroup_limit_is_none(tmp_path, lines, files):
    root, proc = _cgroup(tmp_path, lines, files)
    assert textvae.batching.memory.cgroup_memory_limit(root, proc) is None


def test_no_proc_file_is_none(tmp_path):
    assert textvae.batching.memory.cgroup_memory_limit(tmp_path, tmp_path / "absent") is None


def test_the_default_budget_is_a_quarter_of_the_container_limit(monkeypatch):
    memory = textvae.batching.memory
    monkeypatch.setattr(memory, "physical_memory", lambda: 64 * GIB)
    monkeypatch.setattr(memory, "cgroup_memory_limit", lambda: 4 * GIB)
    assert memory.memory_limit() == 4 * GIB
    assert memory.default_memory_budget() == GIB
    monkeypatch.setattr(memory, "cgroup_memory_limit", lambda: None)
    assert memory.default_memory_budget() == 16 * GIB


def test_beyond_the_container_limit_is_refused(small_store, monkeypatch):
    monkeypatch.setattr(textvae.batching.memory, "cgroup_memory_limit", lambda: 20 * BATCH_BYTES)
    with pytest.raises(InvalidArgumentError, match=r"or its container's limit"):
        OneHotSequence(
            small_store, "train", 8, max_queue_size=30, memory=MemoryOptions(memory_budget=2**40)
        )
