"""Old import paths and names, kept working for one release through one table.

textvae 0.2 moved its modules into four wings (:mod:`textvae.data`, :mod:`textvae.batching`,
:mod:`textvae.model`, :mod:`textvae.training`) and renamed a few names. Every old path and name
still resolves until 0.3, with a :class:`~textvae.errors.TextVAEDeprecationWarning` that names
the new home. This module is the only place that knows the old names: :data:`MOVED_MODULES`
(an old module path -> the modules that hold its names now), :data:`RENAMED` (an old
``module.name`` -> its new ``module.name``) and :data:`REMOVED` (the few without a
successor). :func:`deprecated` is the one way to warn.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

from textvae.errors import TextVAEDeprecationWarning

__all__ = [
    "MOVED_MODULES",
    "REMOVED",
    "REMOVED_IN",
    "RENAMED",
    "deprecated",
    "install",
    "resolve_renamed",
]

#: The release that removes every name this table keeps alive.
REMOVED_IN = "0.3"

#: Old module path -> the modules that hold its public names now, searched in order.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "textvae.store": (
        "textvae.data.store",
        "textvae.data.format",
        "textvae.data.location",
        "textvae.data.ingest",
        "textvae.data.resolve",
    ),
    "textvae.corpus": ("textvae.data.corpus", "textvae.data.discover", "textvae.data.keras_imdb"),
    "textvae.sources": ("textvae.data.from_ids", "textvae.data.from_texts", "textvae.data.user"),
    "textvae.parallel_ingest": ("textvae.data.parallel", "textvae.data.ingest"),
    "textvae.verify": ("textvae.data.verify",),
    "textvae.vocab": ("textvae.data.vocab",),
    "textvae.lock": ("textvae.data.lock",),
    "textvae.retry": ("textvae.data.retry",),
    "textvae.sequence": (
        "textvae.batching.sequence",
        "textvae.batching.sampling",
        "textvae.batching.memory",
        "textvae.batching.buffers",
    ),
    "textvae.layout": ("textvae.batching.layout",),
    "textvae.adapters": ("textvae.batching.adapters",),
    "textvae.kernels.onehot": ("textvae.kernels._onehot",),
    "textvae.layers": ("textvae.model.layers",),
    "textvae.decoding": ("textvae.model.decoding",),
    "textvae.metrics": ("textvae.model.metrics",),
    "textvae.train": ("textvae.training.trainer",),
    "textvae.distributed": ("textvae.training.distributed",),
    "textvae.callbacks": ("textvae.training.callbacks",),
    "textvae.run": ("textvae.training.run",),
    "textvae.preemption": ("textvae.training.preemption",),
    "textvae.cluster": ("textvae.training.cluster",),
    "textvae.evaluate": ("textvae.training.evaluate", "textvae.training.plots"),
    "textvae.sample": ("textvae.training.sample",),
}

#: Old ``module.name`` -> new ``module.name`` for names that changed or left ``textvae``'s top.
RENAMED: dict[str, str] = {
    # textvae 0.1 exported every error class at the top; they live in textvae.errors.
    **{
        f"textvae.{name}": f"textvae.errors.{name}"
        for name in (
            "CheckpointError",
            "CorpusError",
            "CorpusNotFoundError",
            "DatasetUnavailableError",
            "IncompleteStoreError",
            "InvalidArgumentError",
            "MemoryBudgetWarning",
            "OutputDirError",
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
            "TrainingInterrupted",
        )
    },
    "textvae.open_corpus": "textvae.data.open_corpus",
    # One name per concept: a row selection and an iterable of rows were both `Rows`.
    "textvae.store.Rows": "textvae.data.store.RowSelection",
    "textvae.sources.Rows": "textvae.data.user.SplitRows",
    "textvae.to_torch": "textvae.batching.adapters.batch_to_torch",
    "textvae.torch_dataloader": "textvae.batching.as_torch_dataloader",
    # One verb per hand-off, as Keras' data adapters name theirs.
    "textvae.adapters.to_torch": "textvae.batching.adapters.batch_to_torch",
    "textvae.adapters.torch_dataloader": "textvae.batching.adapters.as_torch_dataloader",
    "textvae.adapters.epoch_batches": "textvae.batching.adapters.as_numpy_iterator",
    "textvae.tokenize": "textvae.data.tokenize",
    "textvae.VerifyReport": "textvae.data.VerifyReport",
    "textvae.build_vae": "textvae.model.build_vae",
    "textvae.TrainingState": "textvae.training.TrainingState",
    # Moved out of textvae.model (then one module) during 0.1; still resolved until 0.3.
    "textvae.model.KLAnnealing": "textvae.training.callbacks.KLAnnealing",
    "textvae.model.active_units": "textvae.model.metrics.active_units",
    "textvae.model.token_accuracy": "textvae.model.metrics.token_accuracy",
}


#: Old ``module.name`` -> what replaces it, for the few names removed without a one-to-one
#: successor: reaching one raises AttributeError saying what to use instead.
REMOVED: dict[str, str] = {
    "textvae.parallel_ingest.ParallelWriter": (
        "build_store(..., workers=N) (the writer is textvae.data.chunk_encoder.ChunkEncoder over "
        "textvae.data.parallel.Pool)"
    ),
    "textvae.parallel_ingest.tokenizes_in_workers": (
        "the corpus's own answer, Corpus.tokenizes_in_workers()"
    ),
}


def deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn once per call site that ``old`` is deprecated in favour of ``new``.

    Every deprecation in textvae goes through here, so they read the same and one
    ``warnings.filterwarnings(..., category=TextVAEDeprecationWarning)`` governs them all.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in textvae {REMOVED_IN}: use {new}",
        TextVAEDeprecationWarning,
        stacklevel=stacklevel,
    )


def _resolve(old_module: str, name: str) -> Any:
    """The object that ``old_module.name`` names today (warning), or AttributeError."""
    removed = REMOVED.get(f"{old_module}.{name}")
    if removed is not None:
        raise AttributeError(f"{old_module}.{name} was removed in textvae 0.2: use {removed}")
    renamed = RENAMED.get(f"{old_module}.{name}")
    if renamed is not None:
        module, _, new_name = renamed.rpartition(".")
        deprecated(f"{old_module}.{name}", renamed, stacklevel=4)
        return getattr(importlib.import_module(module), new_name)
    for candidate in MOVED_MODULES.get(old_module, ()):
        try:
            module = importlib.import_module(candidate)
        except ModuleNotFoundError as err:
            if err.name != candidate:  # a real import failure inside the module
                raise
            continue
        if name in getattr(module, "__all__", ()) or (
            not name.startswith("_") and hasattr(module, name)
        ):
            deprecated(f"{old_module}.{name}", f"{candidate}.{name}", stacklevel=4)
            return getattr(module, name)
    raise AttributeError(f"module {old_module!r} has no attribute {name!r}")


def resolve_renamed(package: str, name: str) -> Any:
    """``package.name`` for a name that left ``package`` (with a warning), or AttributeError.

    The fallback of every face's lazy ``__getattr__`` (:func:`textvae._lazy.attach`).
    """
    if f"{package}.{name}" in RENAMED or f"{package}.{name}" in REMOVED:
        return _resolve(package, name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


class _MovedModule(types.ModuleType):
    """An old module path: each attribute resolves to its new home with a warning.

    Calling it calls the function of the same name (``textvae.train`` was a module and is now
    the function; importing the old module rebinds the package attribute to this object).
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _resolve(self.__name__, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import textvae.store`` (and every old path in the table) still work."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _MovedModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        homes = " or ".join(MOVED_MODULES[module.__name__])
        deprecated(f"importing {module.__name__}", homes, stacklevel=6)


_FINDER = _Finder()


def install() -> None:
    """Put the old-path finder on ``sys.meta_path`` (once; ``import textvae`` calls this)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
