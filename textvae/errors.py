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
    "MemoryBudgetWarning",
    "MissingExtraError",
    "OutputDirError",
    "RunLockedError",
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
    "TextVAEDeprecationWarning",
    "TextVAEError",
    "TrainingInterrupted",
]


class TextVAEError(Exception):
    """Root of every error textvae raises for bad input."""


class InvalidArgumentError(TextVAEError, ValueError):
    """An argument, option or setting (``TF_CONFIG``) has a value textvae does not accept; the
    message names it, the rule and the value received."""


class TextVAEDeprecationWarning(DeprecationWarning):
    """A textvae name, import path, argument or flag that is going away: its message names the
    replacement and the release that removes it. Raised through :func:`textvae._compat.deprecated`
    only, so every deprecation reads the same and can be filtered as one class."""


class MemoryBudgetWarning(UserWarning):
    """A configuration may keep more one-hot batch memory alive than its ``memory_budget``
    (a warning, not an error: the machine may well have the memory)."""


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
    """A local store cannot be written where asked: a parent is a file or not writable, or the
    disk filled (or a file-size limit was reached) during the build."""


class StoreUnavailableError(TextVAEError, ConnectionError):
    """Object storage did not answer (connection refused or reset, timeouts) within the retry
    time: the network, the endpoint or the server is down."""


class StoreCorruptError(TextVAEError, OSError):
    """A stored chunk fails its checksum or cannot be decoded: the bytes on the medium changed.

    An ``OSError``, as ``gzip.BadGzipFile`` is: the data read back is not the data written.
    """


class StoreLockedError(TextVAEError, BlockingIOError):
    """Another ingest holds the lock of the store path (a ``BlockingIOError``, as a held
    ``fcntl`` lock raises)."""


class StoreExistsError(TextVAEError, FileExistsError):
    """A store already exists where a new one would be built."""


class StoreFormatError(TextVAEError, ValueError):
    """Something is at the path, but it is not a valid textvae store (format 1 or 2)."""


class IncompleteStoreError(StoreFormatError):
    """The store's build never finished (interrupted or failed): it has no ``complete`` flag."""


class StoreMismatchError(StoreFormatError):
    """A valid store whose vocab_size, max_len or splits differ from what the caller expects."""


class SettingError(TextVAEError, ValueError):
    """An environment variable textvae reads holds a value it cannot use."""


class OutputDirError(TextVAEError, OSError):
    """The output directory cannot be written, or holds results a run would overwrite."""


class CheckpointError(TextVAEError, ValueError):
    """A checkpoint to resume from is missing or does not match the model configuration."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving its state; ``--resume`` continues it.

    A ``KeyboardInterrupt``, not a :class:`TextVAEError`: nothing was wrong with the input, and
    ``textvae-train`` exits as for Ctrl-C (code 130) after printing where it stopped.

    Attributes
    ----------
    signum
        The signal received (``signal.SIGTERM``, ``signal.SIGINT``).
    step
        The optimizer's ``iterations`` at the saved checkpoint: no trained step is lost.
    """

    def __init__(self, message: str, signum: int, step: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.step = step

    def __reduce__(self):
        return type(self), (str(self), self.signum, self.step)


class MissingExtraError(TextVAEError, ImportError):
    """A command or function needs an optional dependency that is not installed (a Keras
    backend, matplotlib, s3fs, ...): the message names the extra that installs it
    (``pip install "textvae[jax]"``). An ``ImportError``, so code that already catches a
    failed import keeps working; ``name`` is the module that was missing."""


class RunLockedError(TextVAEError, BlockingIOError):
    """Another ``textvae-train`` holds the lock of the run folder (``--out``): it is training,
    resuming or overwriting there. A ``BlockingIOError``, as :class:`StoreLockedError`."""
