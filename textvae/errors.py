"""The textvae error hierarchy.

Every error a user can cause derives from :class:`TextVAEError` and also from the built-in
type a user would catch (``FileNotFoundError``, ``ValueError``, ...). Only ``textvae.cli``
catches them, prints one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

__all__ = [
    "CheckpointError",
    "ClusterError",
    "ClusterUnavailableError",
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
    "unwrap",
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


class ClusterError(TextVAEError, RuntimeError):
    """The Dask cluster of an ingest (``--scheduler``) failed it: its workers kept dying on a
    task, or could not run textvae's tasks at all. The store is not completed."""


class ClusterUnavailableError(ClusterError, ConnectionError):
    """The Dask scheduler of an ingest cannot be reached, or went away during the ingest."""


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


# -- errors that crossed an input pipeline ---------------------------------------------------
#: Packages whose exceptions wrap an error raised in the input pipeline (a ``tf.data``
#: ``py_function``, Keras' enqueuer, a worker pool): through them, ``__context__`` is followed
#: too. Through textvae's own code only ``__cause__`` is: a textvae error that was being handled
#: when a bug struck must not hide the bug's traceback.
_WRAPPER_PACKAGES = (
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "torch",
    "multiprocessing",
    "concurrent",
)
#: The last line of a formatted textvae exception (``traceback.format_exception``), as TensorFlow
#: and PyTorch's DataLoader workers embed it in their own error's message.
_FORMATTED = re.compile(r"^textvae\.errors\.([A-Za-z_]\w*): ?(.*)$", re.MULTILINE)
_TRACEBACK = "Traceback (most recent call last)"


def _from_text(text: str) -> TextVAEError | None:
    """The textvae error whose formatted traceback ``text`` ends with, rebuilt (its class, its
    message), or None. Only the *last* exception of the text counts: a textvae error followed
    by another traceback was not the error that stopped the pipeline."""
    matches = list(_FORMATTED.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    if _TRACEBACK not in text[: last.start()] or _TRACEBACK in text[last.end() :]:
        return None
    cls = globals().get(last.group(1))
    if not (isinstance(cls, type) and issubclass(cls, TextVAEError)):
        return None
    # Continuation lines of a multi-line message run to the first blank line (after it,
    # TensorFlow adds its `[[{{node PyFunc}}]]` line).
    message = (last.group(2) + text[last.end() :].split("\n\n", 1)[0]).rstrip()
    # Built without calling a subclass's own __init__ (whose arguments the text does not
    # hold): the class and the message are what the user is told.
    error = cls.__new__(cls, message)
    error.args = (message,)
    return error


def _text(err: BaseException) -> str:
    try:
        return str(err)
    except Exception:  # a broken __str__ must not hide the error being unwrapped
        return ""


def _is_wrapper(err: BaseException) -> bool:
    return type(err).__module__.partition(".")[0] in _WRAPPER_PACKAGES


def unwrap(err: BaseException) -> TextVAEError | None:
    """The textvae error behind ``err``, once an input pipeline wrapped it; else None.

    A textvae error raised while batches are read (in a Keras ``PyDataset`` worker thread or
    process, Keras' enqueuer, a ``tf.data`` ``from_generator`` / ``py_function`` such as
    :func:`textvae.batching.as_tf_dataset`, JAX or PyTorch iteration) reaches the caller as
    itself, as a framework error that keeps it in ``__cause__`` / ``__context__``, or as text
    only: TensorFlow raises ``tf.errors.UnknownError`` whose message holds the formatted
    traceback, and a PyTorch ``DataLoader`` worker re-raises the class with the traceback as its
    message. In the last two cases the error is rebuilt from the traceback's final line
    (``textvae.errors.StoreCorruptError: <message>``): same class, same message.

    Parameters
    ----------
    err
        Any exception.

    Returns
    -------
    TextVAEError or None
        ``err`` itself when it is a textvae error with a plain message; the textvae error it
        wraps; or None when nothing in it is a textvae error (a bug: keep its traceback).
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TextVAEError):
            if _TRACEBACK in str(current):  # a worker's traceback as the message (PyTorch)
                return _from_text(str(current)) or current
            return current
        found = _from_text(_text(current))  # (PyTorch falls back to a RuntimeError's text)
        if found is not None:
            return found
        if _is_wrapper(current):
            current = current.__cause__ or current.__context__
        else:
            current = current.__cause__
    return None


class RunLockedError(TextVAEError, BlockingIOError):
    """Another ``textvae-train`` holds the lock of the run folder (``--out``): it is training,
    resuming or overwriting there. A ``BlockingIOError``, as :class:`StoreLockedError`."""
