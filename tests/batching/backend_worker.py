"""Checks of OneHotSequence under one Keras backend, for test_backends.py (not a test file).

``KERAS_BACKEND=jax|torch python backend_worker.py STORE``
``KERAS_BACKEND=jax python backend_worker.py --wings FOLDER`` (the light check below)

TensorFlow is made unimportable before anything else is imported (the GPU machines have none):
an ``import tensorflow`` anywhere on these paths fails the run.

Keras reads ``KERAS_BACKEND`` once, at import: each backend needs a process of its own. This
one runs every check for its backend (import time dominates) and prints one JSON line with
what it saw; a batch that differs from the store's rows fails an assertion here (exit 1).

- ``fit`` with one-hot and with sparse targets (2 thread workers, ``EpochSync``): the losses
  of every epoch and whether the weights changed;
- the batches ``fit`` receives on this backend, an epoch of them held at once, each against a
  NumPy reference of the rows the Sequence planned for it; whether the one-hot ones share the
  Sequence's buffers, and the marks test: write into every pooled buffer and count the held
  batches that show it (one each: zero-copy, and no buffer recycled under a held batch);
- whether TensorFlow was imported (it cannot be: see above);
- torch only: the same through ``seq.as_torch_dataloader()`` (zero-copy), ``fit`` on that
  loader, and a plain PyTorch training loop over it.

``--wings``: every module of textvae.kernels, textvae.data and textvae.batching imported, then
a store built in FOLDER with :func:`textvae.testing.make_store`, and batches of several layouts
served through ``seq[i]``, ``seq.as_numpy_iterator()`` and Keras' own PyDataset adapter, each
checked with :func:`textvae.testing.assert_batch_matches_store`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import pkgutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Refuses ``tensorflow`` and its submodules, as on a machine without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (refused by this test)", name=name)


sys.meta_path.insert(0, _NoTensorFlow())

# Imported after the refusal is in place (hence E402).
import keras  # noqa: E402
import numpy as np  # noqa: E402

from textvae.batching import MemoryOptions, OneHotSequence  # noqa: E402
from textvae.data.store import TokenStore  # noqa: E402
from textvae.testing import assert_batch_matches_store  # noqa: E402
from textvae.training.callbacks import EpochSync  # noqa: E402

BACKEND = keras.backend.backend()


def tiny_model(vocab_size: int, max_len: int, targets: str) -> keras.Model:
    # Seeded initialisers, not keras.utils.set_random_seed: that imports TensorFlow to seed it
    # too, and a JAX or torch run must not need TensorFlow (the GPU machines have none).
    init = keras.initializers.GlorotUniform
    ids = keras.Input((max_len,), dtype="int32")
    h = keras.layers.Embedding(vocab_size, 8, embeddings_initializer=init(seed=0))(ids)
    recon = keras.layers.Dense(
        vocab_size, activation="softmax", name="reconstruction", kernel_initializer=init(seed=1)
    )(h)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    senti = keras.layers.Dense(
        1, activation="sigmoid", name="sentiment", kernel_initializer=init(seed=2)
    )(pooled)
    model = keras.Model(ids, {"reconstruction": recon, "sentiment": senti})
    recon_loss = f"{'sparse_' if targets == 'sparse' else ''}categorical_crossentropy"
    model.compile(
        keras.optimizers.Adam(0.05),
        loss={"reconstruction": recon_loss, "sentiment": "binary_crossentropy"},
    )
    return model


def fit_case(store: TokenStore, targets: str, loader: str = "sequence") -> dict:
    seq = OneHotSequence(store, "train", 8, targets=targets, workers=2, max_queue_size=2)
    model = tiny_model(store.vocab_size, store.max_len, targets)
    before = [w.copy() for w in model.get_weights()]
    data = seq if loader == "sequence" else seq.as_torch_dataloader()
    history = model.fit(data, epochs=2, shuffle=False, verbose=0, callbacks=[EpochSync(seq)])
    changed = any(
        not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)
    )
    return {"loss": history.history["loss"], "weights_changed": changed}


def pointer(x) -> int:
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if BACKEND == "jax":
        return x.unsafe_buffer_pointer()
    return x.data_ptr()


def delivered_case(store: TokenStore, path: str) -> dict:
    """Hold an epoch of batches as the train step receives them on ``path``; check each one,
    whether it shares the Sequence's memory, and the marks test."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    seq = OneHotSequence(store, "train", 4, seed=5, workers=2, max_queue_size=2)
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    if path == "dataloader":
        batches = iter(seq.as_torch_dataloader())
        adapter = None
    else:
        adapter = PyDatasetAdapter(seq, shuffle=False)
        adapter.on_epoch_begin()
        if path == "jax":
            import jax

            # On CPU the numpy batch goes into the jitted step as is; on an accelerator Keras
            # puts it with jax.device_put (trainer._distribute_data): hold what device_put
            # gives, the stricter case (nothing else holds the NumPy batch).
            batches = (jax.tree.map(jax.device_put, b) for b in adapter.get_jax_iterator())
        else:
            batches = iter(adapter.get_torch_dataloader())
    held = []
    for batch in batches:
        held.append(batch)  # held until the end: nothing may be recycled under it
    pool = [buf for buf, _ in seq._pool._buffers]
    pointers = {buf.ctypes.data for buf in pool}
    if adapter is not None:
        adapter.on_epoch_end()
    assert len(held) == len(seq), (len(held), len(seq))
    for (ids, outputs), r in zip(held, rows, strict=True):
        assert_batch_matches_store(seq, (ids, outputs), r)
    shares = [pointer(out["reconstruction"]) in pointers for _, out in held]
    for buf in pool:
        buf[0, 0, 0] = 7
    marked = [float(np.asarray(out["reconstruction"][0, 0, 0])) == 7 for _, out in held]
    return {
        "batches": len(held),
        "pool": len(pool),
        "shares": sum(shares),
        "marked": sum(marked),
        "type": type(held[0][1]["reconstruction"]).__name__,
    }


def jit_hold_case(store: TokenStore) -> dict:
    """A CPU ``fit`` on JAX hands the NumPy batch to the jitted step, which aliases it and runs
    asynchronously: the Sequence must not recycle the buffer while that step may still read
    it. With a pool of one buffer, the next batch must get another buffer while the step's
    result is alive, and the result must be that of the batch as it was."""
    import jax
    import jax.numpy as jnp

    seq = OneHotSequence(store, "train", 4, seed=5, memory=MemoryOptions(pool_size=1))
    step = jax.jit(lambda onehot: (onehot * jnp.arange(onehot.shape[-1])).sum())  # sum of ids
    ids, outputs = seq[0]
    pointer_before = outputs["reconstruction"].ctypes.data
    result = step(outputs["reconstruction"])
    del outputs  # as a training loop drops the batch after dispatching its step
    _, following = seq[1]
    return {
        "recycled_under_step": following["reconstruction"].ctypes.data == pointer_before,
        "result_exact": float(result) == float(ids.sum()),
    }


def torch_loop(store: TokenStore) -> dict:
    """The README's PyTorch recipe in small: an epoch loop over ``as_torch_dataloader``."""
    import torch

    torch.manual_seed(0)
    seq = OneHotSequence(store, "train", 8, reconstruction_name=None, sentiment_name="label")
    loader = seq.as_torch_dataloader()
    model = torch.nn.Sequential(
        torch.nn.Embedding(store.vocab_size, 8), torch.nn.Flatten(), torch.nn.LazyLinear(1)
    )
    model(torch.zeros((1, store.max_len), dtype=torch.int32))  # materialise LazyLinear
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for epoch in range(4):
        seq.set_epoch(epoch)
        total = 0.0
        for ids, outputs in loader:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(ids), outputs["label"]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(loader))
    return {"loss": losses}


def batch_to_torch_case() -> dict:
    """batch_to_torch on a nested layout with a read-only batch: tensors sharing every array's
    memory, lists as tuples, and no warning (torch warns on each read-only array it wraps)."""
    import warnings

    from textvae.batching.adapters import batch_to_torch

    onehot = np.zeros((2, 3, 4), np.float32).view()
    onehot.flags.writeable = False  # as the Sequence hands batches out: a read-only view
    batch = ({"ids": np.ones((2, 3), np.int32)}, [onehot], np.ones(2, np.float16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y, w = batch_to_torch(batch)
    arrays = (batch[0]["ids"], onehot, batch[2])
    tensors = (x["ids"], y[0], w)
    return {
        "warnings": [str(c.message) for c in caught],
        "structure": [type(x).__name__, type(y).__name__, sorted(x)],
        "shares": [t.data_ptr() == a.ctypes.data for t, a in zip(tensors, arrays, strict=True)],
        "dtypes": [str(t.dtype) for t in tensors],
    }


WINGS = ("textvae.kernels", "textvae.data", "textvae.batching")
WING_LAYOUTS = {
    "vae": {},
    "sparse": {"targets": "sparse", "dtype": "uint8"},
    "lm-masked": {
        "inputs": "tokens",
        "outputs": {"lm": "next_onehot", "label": "classes"},
        "sample_weight": "mask",
        "dtype": "float16",
    },
}


def wings_case(folder: str) -> dict:
    """Import every module of the wings, then serve and check batches on this backend."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from textvae.testing import make_store

    modules = []
    for wing in WINGS:
        package = importlib.import_module(wing)
        modules.append(wing)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{wing}."):
            importlib.import_module(info.name)
            modules.append(info.name)
    store = make_store(os.path.join(folder, "s.zarr"), rows={"train": 30, "test": 9}, seed=1)
    checked = 0
    for kwargs in WING_LAYOUTS.values():
        seq = OneHotSequence(store, "train", 7, seed=2, **kwargs)
        for i in range(len(seq)):
            assert_batch_matches_store(seq, seq[i], seq.batch_rows(i))
            checked += 1
        plan = [seq.batch_rows(i) for i in range(len(seq))]
        for batch, rows in zip(seq.as_numpy_iterator(), plan, strict=True):
            assert_batch_matches_store(seq, batch, rows)
            checked += 1
        plan = [seq.batch_rows(i) for i in range(len(seq))]
        adapter = PyDatasetAdapter(seq, shuffle=False)
        adapter.on_epoch_begin()
        iterator = adapter.get_jax_iterator() if BACKEND == "jax" else adapter.get_numpy_iterator()
        for batch, rows in zip(iterator, plan, strict=True):
            assert_batch_matches_store(seq, batch, rows)
            checked += 1
        adapter.on_epoch_end()
    return {"backend": BACKEND, "modules": modules, "batches_checked": checked}


def main(store_path: str) -> None:
    store = TokenStore.open(store_path)
    result: dict = {"backend": BACKEND}
    result["fit_onehot"] = fit_case(store, "onehot")
    result["fit_sparse"] = fit_case(store, "sparse")
    result["delivered"] = delivered_case(store, BACKEND)
    if BACKEND == "jax":
        result["jit_hold"] = jit_hold_case(store)
    if BACKEND == "torch":
        result["dataloader"] = delivered_case(store, "dataloader")
        result["fit_dataloader"] = fit_case(store, "onehot", loader="dataloader")
        result["torch_loop"] = torch_loop(store)
        result["batch_to_torch"] = batch_to_torch_case()
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "--wings":
        print(json.dumps(wings_case(sys.argv[2])))
    else:
        main(sys.argv[1])
