"""Command start-up: Keras imported without TensorFlow's C++ start-up lines on stderr, and one
line naming the extra to install when a Keras backend or another optional package is missing.

Importing Keras with its TensorFlow backend prints lines such as ``WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR``, ``I0000 ... cudart_stub.cc:31]
Could not find cuda drivers`` and ``cpu_feature_guard.cc`` notices, and the first device query
logs ``E0000 ... failed call to cuInit`` on a machine without a GPU. Tried here (TensorFlow 2.21):
``TF_CPP_MIN_LOG_LEVEL=3`` silences the ``cpu_feature_guard`` and ``cuInit`` lines but not the
first two, which absl writes to file descriptor 2 before its logging is initialised, whatever
the environment says (``GLOG_minloglevel`` and ``TF_ENABLE_ONEDNN_OPTS`` change nothing), and
``TF_CPP_MIN_LOG_LEVEL=2`` still lets the ``cuInit`` error through at the first device query. So
the commands import Keras, and make that first device query, with descriptor 2 pointed at
``/dev/null``, then put it back.

Showing these lines is its own switch (``--show-backend-log``), apart from ``--verbose`` (how
much progress a command prints): a user who wants one line per epoch in a log file does not want
TensorFlow's start-up in it. A ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept: 2 or 3 keeps the
start-up quiet as well (it used to turn the hiding off, so every line came back), and so does
1, which TensorFlow itself sets when it is imported (a child of such a process inherits it);
0 asks for every notice and shows everything.

Missing extras: the core install (keras, numpy, numba, zarr) has no Keras backend and no
matplotlib or s3fs. Keras 3.15 imports its configured backend's package inside ``import keras``
(``KERAS_BACKEND``, else ``~/.keras/keras.json``, else TensorFlow) and fails with
``ModuleNotFoundError: No module named 'tensorflow'`` when it is absent. :func:`import_keras`
turns that into one :class:`~textvae.errors.MissingExtraError` line naming the extra to install;
:func:`import_extra` and :func:`require_extra` do the same for any other optional package.
Only the standard library and :mod:`textvae.errors` are imported here, so any floor may use it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from textvae.errors import MissingExtraError

__all__ = [
    "BACKEND_EXTRAS",
    "LOG_LEVEL_ENV",
    "SHOW_BACKEND_LOG_HELP",
    "backend_log_hidden",
    "import_extra",
    "import_keras",
    "missing_extra",
    "require_extra",
]

#: TensorFlow's C++ log threshold (0 all ... 3 fatal only); a value the user set is kept.
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: Values of ``TF_CPP_MIN_LOG_LEVEL`` with which a user asks to see TensorFlow's notices (not
#: 1: ``import tensorflow`` sets 1 where nothing is set, and child processes inherit it).
_SHOWING_LEVELS = ("0",)
#: The help of ``--show-backend-log``, the same in every command that imports Keras.
SHOW_BACKEND_LOG_HELP = (
    "show TensorFlow's start-up log lines on stderr (CUDA, oneDNN, CPU features), hidden "
    f"otherwise; {LOG_LEVEL_ENV}=0 shows them too, 1, 2 or 3 keeps them hidden"
)
#: Keras backend -> (the top-level package Keras imports for it, the textvae extra installing it).
BACKEND_EXTRAS: dict[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
}
#: The backend Keras uses when neither ``KERAS_BACKEND`` nor ``keras.json`` names one.
_KERAS_DEFAULT_BACKEND = "tensorflow"


def _command() -> str:
    """The running console script (``textvae-train``), or ``textvae`` from Python code."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.startswith("textvae-") else "textvae"


def _top(module: str | None) -> str:
    return (module or "").partition(".")[0]


def missing_extra(module: str, extra: str, needed_for: str) -> MissingExtraError:
    """The one-line error for an optional package that is not installed.

    Parameters
    ----------
    module
        The package that failed to import (``"matplotlib"``).
    extra
        The textvae extra that installs it (``"plot"``): the message says
        ``pip install "textvae[plot]"``.
    needed_for
        What needs it, as the start of the sentence (``"textvae-train's latents.png"``).
    """
    return MissingExtraError(
        f'{needed_for} needs {module}, which is not installed: pip install "textvae[{extra}]"',
        name=module,
    )


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (``sys.modules[name] = None``,
    the way to make a module unimportable, counts as absent)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is absent or blocked
        return False


def require_extra(module: str, extra: str, needed_for: str) -> None:
    """Raise :class:`~textvae.errors.MissingExtraError` unless ``module`` is installed.

    For a check before a long run (training, then drawing ``latents.png``): it looks the package
    up without importing it (a dotted name imports its parent package). Arguments as for
    :func:`missing_extra`.
    """
    if not _installed(_top(module)) or not _installed(module):
        raise missing_extra(module, extra, needed_for)


def import_extra(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import ``module`` from an optional extra, or raise the one-line
    :class:`~textvae.errors.MissingExtraError` naming the extra.

    Only the package's own absence is translated: an ``ImportError`` raised for another module
    inside it (a broken install) keeps its traceback. Arguments as for :func:`missing_extra`.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if _top(err.name) != _top(module):
            raise
        raise missing_extra(module, extra, needed_for) from err


def _backend_error(backend: str, err: ImportError) -> MissingExtraError:
    """The one line for ``import keras`` failing because its backend's package is absent."""
    package, extra = BACKEND_EXTRAS[backend]
    others = {b: e for b, (_, e) in BACKEND_EXTRAS.items() if b != backend}
    extras = " or ".join(f'"textvae[{e}]"' for e in others.values())
    if os.environ.get("KERAS_BACKEND"):
        chosen = f"{backend}, the backend KERAS_BACKEND names,"
    elif backend == _KERAS_DEFAULT_BACKEND:
        chosen = f"{backend}, Keras' default backend,"
    else:
        chosen = f"{backend}, the backend ~/.keras/keras.json names,"
    return MissingExtraError(
        f"{_command()} needs a Keras backend and {chosen} is not installed (no module "
        f'{_top(err.name)!r}): pip install "textvae[{extra}]", or install {extras} '
        f"and set KERAS_BACKEND={' or '.join(others)}",
        name=package,
    )


def _configured_backend() -> str:
    """The backend ``import keras`` chose (its config module is imported before it fails)."""
    config = sys.modules.get("keras.src.backend.config")
    if config is not None:
        return str(config.backend())
    return os.environ.get("KERAS_BACKEND") or _KERAS_DEFAULT_BACKEND


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 (what C++ code writes to) points at /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def backend_log_hidden(show_backend_log: bool = False) -> bool:
    """Whether a command hides the Keras backend's start-up lines: unless ``show_backend_log``
    or the user set ``TF_CPP_MIN_LOG_LEVEL`` to 0 (1, 2 or 3 keeps them hidden)."""
    return not show_backend_log and os.environ.get(LOG_LEVEL_ENV) not in _SHOWING_LEVELS


def _first_device_query() -> None:
    """TensorFlow's first device query (it logs the ``cuInit`` failure on a machine without a
    GPU, at error level); nothing under another backend, or when TensorFlow is not loaded."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and _configured_backend() == "tensorflow":
        with contextlib.suppress(Exception):  # a broken install fails later, with its traceback
            tf.config.list_physical_devices()


def import_keras(*, show_backend_log: bool = False) -> None:
    """Import Keras (and its backend) for a command, without the backend's start-up lines.

    Unless :func:`backend_log_hidden` says otherwise, TensorFlow's C++ logging is limited to
    fatal errors (when the user set no ``TF_CPP_MIN_LOG_LEVEL``; a level the user set is kept)
    and the import and TensorFlow's first device query run with stderr's file descriptor
    silenced. A failed import still raises its Python exception (printed after stderr is
    restored). Does nothing once Keras is imported: the lines were printed then, if at all.

    Raises
    ------
    MissingExtraError
        The configured backend's package (TensorFlow unless ``KERAS_BACKEND`` says otherwise)
        is not installed: one line naming the extra (``pip install "textvae[tensorflow]"``).
    """
    if "keras" in sys.modules:
        return
    quiet = backend_log_hidden(show_backend_log)
    if quiet:
        os.environ.setdefault(LOG_LEVEL_ENV, "3")
    try:
        with _stderr_silenced() if quiet else contextlib.nullcontext():
            import keras  # noqa: F401

            if quiet:
                _first_device_query()
    except ImportError as err:
        backend = _configured_backend()
        if backend in BACKEND_EXTRAS and _top(err.name) == BACKEND_EXTRAS[backend][0]:
            raise _backend_error(backend, err) from err
        raise
