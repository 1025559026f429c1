"""textvae: a text VAE on IMDB at full vocabulary, and the data toolkit under it.

Token ids live in chunked zarr stores (:mod:`textvae.data`), numba kernels expand a batch to
one-hot (:mod:`textvae.kernels`), :class:`OneHotSequence` serves batches to any Keras model
(:mod:`textvae.batching`), and the VAE (:mod:`textvae.model`) trains with :func:`train`
(:mod:`textvae.training`). Errors are in :mod:`textvae.errors`, options in :mod:`textvae.config`.

Every name here is loaded on first use, so ``import textvae`` imports neither Keras nor zarr:
``textvae.TokenStore`` costs zarr, ``textvae.OneHotSequence`` Keras. ``dir(textvae)`` lists
them all.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from textvae import _compat
from textvae._lazy import attach
from textvae.errors import TextVAEError

_compat.install()

try:
    __version__ = version("textvae")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

#: Public name -> the module (a wing's face) that defines it, imported on first use.
_LAZY = {
    "IngestConfig": "textvae.config",
    "ModelConfig": "textvae.config",
    "TrainConfig": "textvae.config",
    "StoreSpec": "textvae.data",
    "TokenStore": "textvae.data",
    "Vocabulary": "textvae.data",
    "build_store": "textvae.data",
    "build_store_from_ids": "textvae.data",
    "build_store_from_texts": "textvae.data",
    "resolve_store": "textvae.data",
    "verify_store": "textvae.data",
    "onehot": "textvae.kernels",
    "OneHotSequence": "textvae.batching",
    "as_numpy_iterator": "textvae.batching",
    "as_tf_dataset": "textvae.batching",
    "as_torch_dataloader": "textvae.batching",
    "TextVAE": "textvae.model",
    "generate": "textvae.model",
    "load_model": "textvae.model",
    "EpochSync": "textvae.training",
    "KLAnnealing": "textvae.training",
    "RunDir": "textvae.training",
    "train": "textvae.training",
}

__all__ = [
    "EpochSync",
    "IngestConfig",
    "KLAnnealing",
    "ModelConfig",
    "OneHotSequence",
    "RunDir",
    "StoreSpec",
    "TextVAE",
    "TextVAEError",
    "TokenStore",
    "TrainConfig",
    "Vocabulary",
    "__version__",
    "as_numpy_iterator",
    "as_tf_dataset",
    "as_torch_dataloader",
    "build_store",
    "build_store_from_ids",
    "build_store_from_texts",
    "generate",
    "load_model",
    "onehot",
    "resolve_store",
    "train",
    "verify_store",
]


__getattr__, __dir__ = attach(__name__, _LAZY)
