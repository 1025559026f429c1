"""Command start-up: Keras imported without TensorFlow's C++ start-up lines on stderr, and one
line naming the extra to install when a Keras backend or another optional package is missing.

Importing Keras with its TensorFlow backend prints lines such as ``WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR``, ``I0000 ... cudart_stub.cc:31]
Could not find cuda drivers`` and ``cpu_feature_guard.cc`` notices, and the first device query
logs ``E0000 ... failed call to cuInit`` on a machine without a GPU. Tried here (TensorFlow 2.21):
``TF_CPP_MIN_LOG_LEVEL=3`` silences the ``cpu_feature_guard`` and ``cuInit`` lines but not the
first two, which absl writes to file descriptor 2 before its logging is initialised, whatever
the environment says (``GLOG_minloglevel`` and ``TF_ENABLE_ONEDNN_OPTS`` change nothing). So the
commands import Keras with descriptor 2 pointed at ``/dev/null``, then put it back.

A user who set ``TF_CPP_MIN_LOG_LEVEL``, or asked for ``--verbose 2``, sees everything.

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
    "SHOW_LOGS_VERBOSITY",
    "import_extra",
    "import_keras",
    "missing_extra",
    "require_extra",
]

#: TensorFlow's C++ log threshold (0 all ... 3 fatal only); a value the user set is kept.
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: ``--verbose`` at which the commands leave TensorFlow's start-up lines alone.
SHOW_LOGS_VERBOSITY = 2
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


def import_keras(verbose: int = 1) -> None:
    """Import Keras (and its backend) for a command, without the backend's start-up lines.

    Below ``verbose`` 2 and unless the user set ``TF_CPP_MIN_LOG_LEVEL``, TensorFlow's C++
    logging is limited to fatal errors and the import runs with stderr's file descriptor
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
    quiet = verbose < SHOW_LOGS_VERBOSITY and LOG_LEVEL_ENV not in os.environ
    if quiet:
        os.environ[LOG_LEVEL_ENV] = "3"
    try:
        with _stderr_silenced() if quiet else contextlib.nullcontext():
            import keras  # noqa: F401
    except ImportError as err:
        backend = _configured_backend()
        if backend in BACKEND_EXTRAS and _top(err.name) == BACKEND_EXTRAS[backend][0]:
            raise _backend_error(backend, err) from err
        raise
