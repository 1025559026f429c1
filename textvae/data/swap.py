"""``--overwrite`` without losing the old store: build beside it, swap it in when complete.

:func:`~textvae.data.ingest.build_store` with ``overwrite`` onto an existing store builds the
new store at a sibling, ``<store>.textvae-new-<pid>`` (same parent folder or prefix), under the
store's lock, and replaces the old one only once the new build is complete (its ``complete``
flag written). A build that fails (a full disk, a size limit, a bad corpus file, Ctrl-C) removes
the sibling and leaves the old store as it was.

Local stores (:func:`swap_local`): on Linux the two folders are exchanged in one step
(``renameat2(RENAME_EXCHANGE)``), then the old one (now at the sibling's name) is deleted; the
store's path always holds a complete store. Where the exchange is not supported, the old store
is renamed aside to ``<store>.textvae-old-<pid>``, the new one renamed into place, the old one
deleted: a crash between the two renames leaves no store at the path and the old one aside.
:func:`recover_local` runs at the start of every ingest into the path (under its lock): it puts
an old store left aside back in place when the path is empty, and deletes every other leftover
sibling (unfinished builds, old stores already replaced).

Object storage (:func:`swap_remote`) has no rename. The new store is built complete under the
sibling prefix; then the store's root ``zarr.json`` is replaced by the new one's, marked
incomplete (readers now refuse the store instead of reading a mix), the old objects are
deleted, the new ones copied in, the complete root ``zarr.json`` copied last, and the sibling
deleted. Guaranteed: a build that fails leaves the old store untouched; once the copy starts,
the old store is given up, but the path is never read as a store until it holds all of the new
one, and the complete new store stays at the sibling until then; :func:`recover_remote` (at
the start of the next ingest into the path) finishes an interrupted copy from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textvae.data.location import StoreLocation, access_error, one_line, remote_fs
from textvae.data.retry import is_transient
from textvae.errors import StoreUnavailableError, StoreWriteError

__all__ = [
    "NEW",
    "OLD",
    "left_aside",
    "recover",
    "recover_local",
    "recover_remote",
    "remove",
    "sibling",
    "swap_in",
    "swap_local",
    "swap_remote",
]

#: ``<store><NEW><pid>``: where an overwrite builds the new store.
NEW = ".textvae-new-"
#: ``<store><OLD><pid>``: where a local swap puts the old store between its two renames.
OLD = ".textvae-old-"
_ROOT = "zarr.json"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: errno values saying the exchange is not supported here (then: two renames).
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def sibling(path: str, kind: str = NEW, pid: int | None = None) -> str:
    """``<path><kind><pid>`` (this process by default), beside the store at ``path``."""
    return f"{path.rstrip('/')}{kind}{os.getpid() if pid is None else pid}"


def _leftover(path: str) -> re.Pattern[str]:
    name = os.path.basename(path.rstrip("/"))
    return re.compile(re.escape(name) + r"\.textvae-(new|old)-\d+")


def _exchange(a: str, b: str) -> bool:
    """Swap the folders ``a`` and ``b`` in one step; False where that is not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def swap_local(path: str, new: str, *, exchange: bool = True) -> None:
    """Put the complete store at ``new`` in place of the store at ``path``, then delete the old.

    ``exchange``: try the one-step exchange first (False: the two renames, as where the
    exchange is not supported; for tests).
    """
    if exchange and _exchange(new, path):
        shutil.rmtree(new, ignore_errors=True)
        return
    aside = sibling(path, OLD)
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)  # the old store back: nothing was replaced
        raise
    shutil.rmtree(aside, ignore_errors=True)


def left_aside(path: str) -> str | None:
    """The old store a local swap killed between its two renames left aside
    (``<path>.textvae-old-<pid>``) when nothing is at ``path``: for the message of a missing
    store (the next ingest into ``path`` puts it back). None when there is none."""
    if os.path.lexists(path):
        return None
    parent = Path(path).absolute().parent
    pattern = _leftover(path)
    with contextlib.suppress(OSError):
        for found in sorted(parent.iterdir()):
            if pattern.fullmatch(found.name) and OLD in found.name:
                return str(found)
    return None


def recover_local(path: str) -> list[str]:
    """Clean up after an overwrite of the local store at ``path`` that was interrupted (call it
    holding the store's lock); return what was done, one line each, for a note.

    An old store left aside (``<path>.textvae-old-<pid>``, a crash between the two renames of
    :func:`swap_local`) goes back to ``path`` when nothing is there; every other leftover
    (an unfinished new build, an old store already replaced) is deleted. Only zarr groups and
    empty folders of those exact names are touched.
    """
    parent = Path(path).absolute().parent
    pattern = _leftover(path)
    try:
        found = sorted(p for p in parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []
    done = []
    target = Path(path)
    for leftover in found:
        is_store = leftover.is_dir() and (
            (leftover / _ROOT).is_file() or not any(leftover.iterdir())
        )
        if not is_store:
            continue
        if OLD in leftover.name and not target.exists():
            os.rename(leftover, target)
            done.append(f"put the store back from {leftover} (an interrupted --overwrite)")
        else:
            shutil.rmtree(leftover, ignore_errors=True)
            done.append(f"removed {leftover}, left by an interrupted --overwrite")
    return done


# -- object storage -----------------------------------------------------------------------------
def _files(fs: Any, inner: str) -> list[str]:
    fs.invalidate_cache(inner)
    try:
        return sorted(fs.find(inner))
    except FileNotFoundError:
        return []


def _marked(root: bytes, complete: bool) -> bytes:
    meta = json.loads(root)
    meta.setdefault("attributes", {}).setdefault("textvae", {})["complete"] = complete
    return json.dumps(meta, indent=2).encode()


def _is_complete(fs: Any, new: str) -> bool:
    try:
        meta = json.loads(fs.cat_file(f"{new}/{_ROOT}"))
        return meta["attributes"]["textvae"]["complete"] is True
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return False


def swap_remote(fs: Any, inner: str, new: str) -> None:
    """Copy the complete store under prefix ``new`` in place of prefix ``inner`` (the store's
    path in ``fs``), as the module's docstring says, then delete ``new``."""
    inner, new = inner.rstrip("/"), new.rstrip("/")
    root = fs.cat_file(f"{new}/{_ROOT}")
    fs.pipe_file(f"{inner}/{_ROOT}", _marked(root, complete=False))  # refused from now on
    stale = [f for f in _files(fs, inner) if f != f"{inner}/{_ROOT}"]
    if stale:
        fs.rm(stale)
    for source in _files(fs, new):
        if source != f"{new}/{_ROOT}":
            fs.cp_file(source, inner + source[len(new) :])
    fs.pipe_file(f"{inner}/{_ROOT}", root)  # complete: the new store is in place
    fs.rm(_files(fs, new))
    fs.invalidate_cache(inner)


def recover_remote(fs: Any, inner: str) -> list[str]:
    """Clean up after an overwrite of the store at prefix ``inner`` that was interrupted (call
    it holding the store's lock); return what was done, one line each, for a note.

    A complete new store left under ``<inner>.textvae-new-<pid>`` means its copy into place
    was interrupted: the copy is finished (the store at ``inner`` was refused as incomplete
    meanwhile). Any other leftover (an unfinished build) is deleted.
    """
    inner = inner.rstrip("/")
    parent = inner.rsplit("/", 1)[0]
    pattern = _leftover(inner)
    fs.invalidate_cache(parent)
    try:
        found = sorted(p.rstrip("/") for p in fs.ls(parent, detail=False))
    except FileNotFoundError:
        return []
    done = []
    for leftover in found:
        if not pattern.fullmatch(leftover.rsplit("/", 1)[-1]) or NEW not in leftover:
            continue
        if _is_complete(fs, leftover):
            swap_remote(fs, inner, leftover)
            done.append(
                f"finished copying the new store from {leftover} (an interrupted --overwrite)"
            )
        else:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(_files(fs, leftover))
            done.append(f"removed {leftover}, left by an interrupted --overwrite")
    return done


# -- what build_store calls ----------------------------------------------------------------------
def recover(location: StoreLocation, log: Callable[[str], None]) -> None:
    """Finish or undo what an interrupted ``--overwrite`` of ``location`` left (the lock held)."""
    if location.is_url:
        fs, inner = remote_fs(location.path, location.storage_options)
        done = recover_remote(fs, inner)
    else:
        done = recover_local(location.path)
    for line in done:
        log(f"note: {line}")


def remove(target: StoreLocation) -> None:
    """Delete a remote sibling build that failed (if storage answers: else the next ingest
    into the store does)."""
    try:
        fs, inner = remote_fs(target.path, target.storage_options)
        fs.rm(inner, recursive=True)
    except Exception:  # never mask the build's own error
        pass


def swap_in(location: StoreLocation, new: StoreLocation) -> None:
    """Put the complete store built at ``new`` in place of the one at ``location``."""
    path = location.path
    try:
        if location.is_url:
            fs, inner = remote_fs(path, location.storage_options)
            _, new_inner = remote_fs(new.path, new.storage_options)
            swap_remote(fs, inner, new_inner)
        else:
            swap_local(path, new.path)
    except Exception as err:
        if location.is_url and is_transient(err):
            raise StoreUnavailableError(
                f"lost {path} while copying the new store into place ({type(err).__name__}: "
                f"{one_line(err)}): {path} is refused as incomplete until the copy is done; "
                f"the new store is complete at {new.path}; when the storage answers again, "
                "run `textvae-ingest` again: it finishes the copy"
            ) from err
        if location.is_url and isinstance(err, PermissionError):
            raise access_error(path, err) from err
        if isinstance(err, OSError) and not location.is_url:
            raise StoreWriteError(
                f"cannot put the new store in place of {path} ({one_line(err)}): the store "
                f"at {path} was kept as it was; the new one is at {new.path}"
            ) from err
        raise
