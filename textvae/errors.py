"""The textvae error hierarchy.

Every error a user can cause derives from :class:`TextVAEError` and also from the built-in
type a user would catch (``FileNotFoundError``, ``ValueError``, ...). Only ``textvae.cli``
catches them, prints one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CorpusError",
    "CorpusNotFoundError",
    "DatasetUnavailableError",
    "IncompleteStoreError",
    "InvalidArgumentError",
    "OutputDirError",
    "StoreAccessError",
    "StoreExistsError",
    "StoreFormatError",
    "StoreMismatchError",
    "StoreNotFoundError",
    "StoreWriteError",
    "TextVAEError",
]


class TextVAEError(Exception):
    """Root of every error textvae raises for bad input."""


class InvalidArgumentError(TextVAEError, ValueError):
    """An argument, option or setting (``TF_CONFIG``) has a value textvae does not accept; the
    message names it, the rule and the value received."""


class CorpusNotFoundError(TextVAEError, FileNotFoundError):
    """A corpus source (file or folder) does not exist."""


class CorpusError(TextVAEError, ValueError):
    """A corpus source exists but cannot be read: not UTF-8, no labels, empty, unknown layout."""


class DatasetUnavailableError(TextVAEError, RuntimeError):
    """IMDB is neither found locally nor downloadable (offline)."""


class StoreNotFoundError(TextVAEError, FileNotFoundError):
    """No token store at the given path or URL."""


class StoreAccessError(TextVAEError, PermissionError):
    """The store's location refused access (object storage: wrong credentials or no permission)."""


class StoreWriteError(TextVAEError, OSError):
    """A local store cannot be created where asked (a parent is a file, or not writable)."""


class StoreExistsError(TextVAEError, FileExistsError):
    """A store already exists where a new one would be built."""


class StoreFormatError(TextVAEError, ValueError):
    """Something is at the path, but it is not a valid textvae store (format 1)."""


class IncompleteStoreError(StoreFormatError):
    """The store's build never finished (interrupted or failed): it has no ``complete`` flag."""


class StoreMismatchError(StoreFormatError):
    """A valid store whose vocab_size, max_len or splits differ from what the caller expects."""


class OutputDirError(TextVAEError, OSError):
    """The output directory cannot be written, or holds results a run would overwrite."""


class CheckpointError(TextVAEError, ValueError):
    """A checkpoint to resume from is missing or does not match the model configuration."""
