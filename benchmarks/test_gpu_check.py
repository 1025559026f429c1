"""benchmarks/gpu_check.py at tiny sizes on the CPU: the table it prints for a GPU machine."""

from __future__ import annotations

import importlib.util
import re

import gpu_check
import pytest

from textvae.config import GPU


@pytest.mark.slow
def test_gpu_check_prints_one_row_per_case(capsys, monkeypatch):
    """On the JAX backend, as on a GPU machine (which has no TensorFlow), where JAX is here."""
    jax = importlib.util.find_spec("jax") is not None
    monkeypatch.setenv("KERAS_BACKEND", "jax" if jax else "tensorflow")  # the children's
    cases = ["onehot float32", "onehot on device"]  # a subprocess each: two keep CI short
    argv = ["--size", "tiny", "--steps", "3", "--warmup", "1", "--decoder-cell", "lstm"]
    assert gpu_check.main([*argv, "--cases", *cases]) == 0
    out = capsys.readouterr().out
    header = f"({'JAX' if jax else 'tensorflow'}), size tiny, lstm decoder"
    assert header in out.splitlines()[0], out
    rows = [line for line in out.splitlines() if line.startswith("| onehot")]
    assert [row.split("|")[1].strip() for row in rows] == cases
    sent = {}
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert float(cells[1]) > 0  # step ms
        assert 0 <= float(cells[2].rstrip("%")) <= 100  # waiting for data
        sent[cells[0]] = float(re.sub(" MB", "", cells[3]))
        assert float(cells[4].split()[0]) > 0  # peak host RSS
    # Host one-hot hands vocab_size x 4 bytes per id to the device; the device case ids only.
    assert sent["onehot float32"] > 100 * sent["onehot on device"] > 0


def test_size_gpu_is_the_gpu_presets():
    """One source of truth: ``--size gpu`` times what ``textvae-train --preset gpu`` trains."""
    vocab, max_len, model, batch = gpu_check.SIZES["gpu"]
    assert (vocab, max_len, batch) == (GPU["vocab_size"], GPU["max_len"], GPU["batch_size"])
    assert model == {k: GPU[k] for k in ("embedding_dim", "hidden", "dense", "latent")} | {
        "decoder_cell": "lstm"
    }
    assert gpu_check.FEED["gpu"] == (GPU["workers"], GPU["max_queue_size"])
