"""Names of a package imported on first use (PEP 562), the way every textvae face loads them.

``import textvae`` must stay free of Keras, zarr and TensorFlow, and each wing's face
(:mod:`textvae.data`, :mod:`textvae.batching`, :mod:`textvae.model`, :mod:`textvae.training`)
must not import its heavy modules until a name from them is used. :func:`attach` gives a
package the module ``__getattr__`` and ``__dir__`` that do this, one implementation for all
five faces. Names that moved or were renamed resolve through :mod:`textvae._compat`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from textvae import _compat

__all__ = ["attach"]


def attach(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public names live in ``homes``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    homes
        Public name -> the module that defines it: a full path (``"textvae.data"``) or a
        submodule of ``package`` (``"store"``).

    Examples
    --------
    In a package's ``__init__.py``::

        __getattr__, __dir__ = attach(__name__, {"TokenStore": "store"})
    """
    modules = {
        name: home if home.startswith("textvae") else f"{package}.{home}"
        for name, home in homes.items()
    }

    def __getattr__(name: str) -> Any:
        home = modules.get(name)
        if home is None:
            return _compat.resolve_renamed(package, name)
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)  # once: later lookups skip this function
        return value

    def __dir__() -> list[str]:
        # The public names, as lazy_loader lists them: loaded or not, and nothing private.
        return sorted({*getattr(sys.modules[package], "__all__", ()), *modules})

    return __getattr__, __dir__
