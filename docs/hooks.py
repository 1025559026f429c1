"""MkDocs hooks: the API reference must cover the public API, and every documented name must
carry a docstring.

mkdocstrings renders what it is given and says nothing of what it is not, nor of an object
without a docstring. These hooks make both a warning, which ``mkdocs build --strict`` (run by
``tests/docs/test_site.py``) turns into a failure:

- every ``::: path`` of a page must name an object with a docstring, and so must each public
  method and property it defines (Keras' own hooks that a layer or a callback overrides, such as
  ``call`` or ``on_epoch_end``, are documented by Keras and are left out);
- every public name of textvae's faces (``__all__`` of :mod:`textvae`, :mod:`textvae.data`, ...)
  must be rendered by some ``:::`` of the reference.

Objects are read with griffe, as mkdocstrings reads them: statically, nothing is imported but the
faces' ``__all__`` lists, which import neither Keras nor zarr.
"""

from __future__ import annotations

import importlib
import logging
import re
from functools import cache
from pathlib import Path

import griffe

log = logging.getLogger("mkdocs.hooks.textvae")
ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"^:::\s+(?P<path>[\w.]+)\s*$", re.MULTILINE)
#: The faces whose ``__all__`` the reference must cover.
FACES = (
    "textvae",
    "textvae.data",
    "textvae.kernels",
    "textvae.batching",
    "textvae.model",
    "textvae.training",
    "textvae.errors",
    "textvae.config",
    "textvae.testing",
    "textvae.progress",
)
#: Methods a subclass overrides for its framework; their meaning is the framework's.
FRAMEWORK_HOOKS = re.compile(
    r"^(call|build|get_config|from_config|compute_output_shape|compute_output_spec|compute_loss"
    r"|compute_metrics|compute_mask|build_from_config|get_build_config|on_[a-z_]+|set_model"
    r"|set_params|result|reset_state|update_state)$"
)
#: Names that are values, not code: documented in the prose of their page, not by a docstring.
VALUES = {"__version__", "DEFAULT_CHUNK_ROWS", "QUICK", "ALIGNMENT", "VOCAB_STAGE", "WORDS"}
VALUES |= {"TINY_TRAIN_ARGS", "ProgressFn", "GPU", "PRESETS"}

_documented: set[str] = set()


@cache
def _package() -> griffe.Module:
    return griffe.load("textvae", search_paths=[str(ROOT)], resolve_aliases=True)


def _lookup(path: str) -> griffe.Object | griffe.Alias | None:
    try:
        return _package()[path.removeprefix("textvae.")] if path != "textvae" else _package()
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _is_public(module: griffe.Object, name: str) -> bool:
    """Whether mkdocstrings renders ``module.name`` (its ``__all__``, else no underscore)."""
    exports = module.exports
    return name in exports if exports is not None else not name.startswith("_")


def _undocumented(obj: griffe.Object | griffe.Alias) -> list[str]:
    """``obj``'s path if it lacks a docstring, and those of its public methods and properties
    that lack one."""
    missing = [] if obj.docstring and obj.docstring.value.strip() else [obj.path]
    if obj.is_class:
        for name, member in obj.members.items():  # defined here, not inherited
            if name.startswith("_") or FRAMEWORK_HOOKS.match(name) or member.is_alias:
                continue
            is_property = member.is_attribute and "property" in member.labels
            if (member.is_function or is_property) and not (
                member.docstring and member.docstring.value.strip()
            ):
                missing.append(member.path)
    return missing


def on_page_markdown(markdown: str, page, config, files) -> str:
    for match in DIRECTIVE.finditer(markdown):
        path = match["path"]
        obj = _lookup(path)
        if obj is None:
            log.warning("%s: `::: %s` names nothing griffe finds", page.file.src_uri, path)
            continue
        rendered = [obj]
        if obj.is_module:  # the module's page: its docstring, then every public member
            rendered += [
                m for n, m in obj.members.items() if _is_public(obj, n) and n not in VALUES
            ]
        for each in rendered:
            _documented.add(each.name)
            for name in _undocumented(each):
                log.warning("%s: %s has no docstring", page.file.src_uri, name)
    return markdown


def on_post_build(config) -> None:
    for face in FACES:
        for name in getattr(importlib.import_module(face), "__all__", ()):
            if name not in VALUES and name not in _documented:
                log.warning(
                    "%s.%s is public (in __all__) but no page of the reference renders it: add "
                    "a `::: module.%s` line to docs/reference/",
                    face,
                    name,
                    name,
                )
