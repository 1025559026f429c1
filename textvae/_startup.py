"""Quiet start-up: Keras imported without TensorFlow's C++ start-up lines on stderr.

Importing Keras with its TensorFlow backend prints lines such as ``WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR``, ``I0000 ... cudart_stub.cc:31]
Could not find cuda drivers`` and ``cpu_feature_guard.cc`` notices, and the first device query
logs ``E0000 ... failed call to cuInit`` on a machine without a GPU. Tried here (TensorFlow 2.21):
``TF_CPP_MIN_LOG_LEVEL=3`` silences the ``cpu_feature_guard`` and ``cuInit`` lines but not the
first two, which absl writes to file descriptor 2 before its logging is initialised, whatever
the environment says (``GLOG_minloglevel`` and ``TF_ENABLE_ONEDNN_OPTS`` change nothing). So the
commands import Keras with descriptor 2 pointed at ``/dev/null``, then put it back.

A user who set ``TF_CPP_MIN_LOG_LEVEL``, or asked for ``--verbose 2``, sees everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["LOG_LEVEL_ENV", "SHOW_LOGS_VERBOSITY", "import_keras"]

#: TensorFlow's C++ log threshold (0 all ... 3 fatal only); a value the user set is kept.
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: ``--verbose`` at which the commands leave TensorFlow's start-up lines alone.
SHOW_LOGS_VERBOSITY = 2


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
    """
    if "keras" in sys.modules:
        return
    quiet = verbose < SHOW_LOGS_VERBOSITY and LOG_LEVEL_ENV not in os.environ
    if quiet:
        os.environ[LOG_LEVEL_ENV] = "3"
    with _stderr_silenced() if quiet else contextlib.nullcontext():
        import keras  # noqa: F401
