"""OneHotSequence, the store and the kernels under Keras' JAX and torch backends, with
TensorFlow made unimportable (the GPU machines have none).

Keras picks its backend from ``KERAS_BACKEND`` once, at import, so each backend runs in a
process of its own (``backend_worker.py`` beside this file: every check of one backend in one
process, since importing dominates). TensorFlow, the default backend, is tested in test_sequence.py.
JAX is in the ``test`` extra (a CPU wheel); torch is skipped where it is not installed (its
registry wheel brings several GB of GPU libraries).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("backend_worker.py")


def _run_worker(backend: str, *args: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    paths = [str(WORKER.parent), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    done = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_face_loads_keras_only_with_the_sequence():
    """``import textvae.batching`` (the plan, options, adapters) needs no Keras; the Sequence
    loads it, and on JAX nothing loads TensorFlow."""
    pytest.importorskip("jax")
    code = (
        "import sys, textvae.batching as b; assert 'keras' not in sys.modules; "
        "b.OneHotSequence; assert 'keras' in sys.modules; "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.timeout(200)
def test_store_kernels_and_sequence_on_jax_without_tensorflow(tmp_path):
    """Every module of textvae.kernels, textvae.data and textvae.batching imports with
    TensorFlow unimportable; a store built there serves exact batches (three layouts, through
    ``seq[i]``, ``as_numpy_iterator`` and Keras' own adapter) under ``KERAS_BACKEND=jax``."""
    pytest.importorskip("jax")
    import pkgutil

    import textvae.batching
    import textvae.data

    result = _run_worker("jax", "--wings", str(tmp_path))
    assert result["backend"] == "jax"
    for wing in (textvae.data, textvae.batching):
        names = {info.name for info in pkgutil.walk_packages(wing.__path__, f"{wing.__name__}.")}
        assert names and names <= set(result["modules"]), names - set(result["modules"])
    assert "textvae.batching.sequence" in result["modules"]
    assert result["batches_checked"] == 3 * 3 * 5  # layouts x paths x batches (30 rows / 7)


def _falls(losses: list[float]) -> bool:
    return all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_and_batches_on_backend(small_store, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'textvae[{backend}]')")
    result = _run_worker(backend, str(small_store.path))
    assert result["backend"] == backend
    assert not result["tensorflow_imported"], "a JAX or torch run must not need TensorFlow"
    for case in ("fit_onehot", "fit_sparse"):
        assert _falls(result[case]["loss"]) and result[case]["weights_changed"], result[case]
    delivered = result["delivered"]
    assert delivered["batches"] == -(-small_store.num_rows("train") // 4)
    if backend == "jax":
        # jax.device_put wraps the aligned buffer: zero-copy, and the held arrays keep their
        # buffers out of the pool (each mark shows through exactly one held batch).
        assert delivered["type"] == "ArrayImpl"
        assert delivered["shares"] == delivered["marked"] == delivered["pool"] > 0
        # A jitted step given the NumPy batch (fit on CPU) holds it while its result lives.
        assert result["jit_hold"] == {"recycled_under_step": False, "result_exact": True}
    else:
        # Keras' torch path converts a NumPy batch with np.array(x): a copy, no mark shows.
        assert delivered["shares"] == delivered["marked"] == 0
        # seq.as_torch_dataloader() hands over torch.from_numpy views: zero-copy, safe.
        loader = result["dataloader"]
        assert loader["batches"] == delivered["batches"]
        assert loader["shares"] == loader["marked"] == loader["pool"] > 0
        fit = result["fit_dataloader"]
        assert _falls(fit["loss"]) and fit["weights_changed"], fit
        assert _falls(result["torch_loop"]["loss"]), result["torch_loop"]
        assert result["batch_to_torch"] == {
            "warnings": [],
            "structure": ["dict", "tuple", ["ids"]],
            "shares": [True, True, True],
            "dtypes": ["torch.int32", "torch.float32", "torch.float16"],
        }


def test_the_face_lists_what_it_holds():
    import textvae.batching

    for name in textvae.batching.__all__:
        assert getattr(textvae.batching, name) is not None, name
    assert set(textvae.batching.__all__) <= set(dir(textvae.batching))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        textvae.batching.nothing  # noqa: B018
