"""textvae: a text VAE on IMDB at full vocabulary.

Token ids live in chunked zarr stores (:mod:`textvae.data.store`), numba kernels expand a batch to
one-hot (:mod:`textvae.kernels`), and :class:`OneHotSequence` serves batches to Keras.

``import textvae`` does not import TensorFlow (it costs seconds and 0.5 GB): the Keras-facing
names (``OneHotSequence``, ``TextVAE``, ``build_vae``, ...) are loaded on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from textvae import _compat
from textvae.batching.adapters import as_tf_dataset, to_torch, torch_dataloader
from textvae.config import IngestConfig, ModelConfig, TrainConfig
from textvae.data import (
    TokenStore,
    VerifyReport,
    Vocabulary,
    build_store,
    build_store_from_ids,
    build_store_from_texts,
    open_corpus,
    resolve_store,
    tokenize,
    verify_store,
)
from textvae.errors import (
    CheckpointError,
    CorpusError,
    CorpusNotFoundError,
    DatasetUnavailableError,
    IncompleteStoreError,
    InvalidArgumentError,
    MemoryBudgetWarning,
    OutputDirError,
    SettingError,
    StoreAccessError,
    StoreCorruptError,
    StoreExistsError,
    StoreFormatError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotFoundError,
    StoreUnavailableError,
    StoreWriteError,
    TextVAEError,
    TrainingInterrupted,
)
from textvae.kernels import onehot
from textvae.training.run import RunDir, TrainingState

_compat.install()

try:
    __version__ = version("textvae")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

# Names whose modules import Keras/TensorFlow: resolved lazily by __getattr__.
_LAZY = {
    "OneHotSequence": "textvae.batching.sequence",
    "TextVAE": "textvae.model.vae",
    "build_vae": "textvae.model.vae",
    "EpochSync": "textvae.training.callbacks",
    "KLAnnealing": "textvae.training.callbacks",
    "generate": "textvae.model.decoding",
    "load_model": "textvae.model.vae",
}
# No lazy `train` here: importing the submodule textvae.training.train would rebind the name to the
# module. Call `from textvae.training.train import train`.

__all__ = [
    "CheckpointError",
    "CorpusError",
    "CorpusNotFoundError",
    "DatasetUnavailableError",
    "EpochSync",
    "IncompleteStoreError",
    "IngestConfig",
    "InvalidArgumentError",
    "KLAnnealing",
    "MemoryBudgetWarning",
    "ModelConfig",
    "OneHotSequence",
    "OutputDirError",
    "RunDir",
    "SettingError",
    "StoreAccessError",
    "StoreCorruptError",
    "StoreExistsError",
    "StoreFormatError",
    "StoreLockedError",
    "StoreMismatchError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoreWriteError",
    "TextVAE",
    "TextVAEError",
    "TokenStore",
    "TrainConfig",
    "TrainingInterrupted",
    "TrainingState",
    "VerifyReport",
    "Vocabulary",
    "__version__",
    "as_tf_dataset",
    "build_store",
    "build_store_from_ids",
    "build_store_from_texts",
    "build_vae",
    "generate",
    "load_model",
    "onehot",
    "open_corpus",
    "resolve_store",
    "to_torch",
    "tokenize",
    "torch_dataloader",
    "verify_store",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'textvae' has no attribute {name!r}")
