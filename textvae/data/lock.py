"""The build lock of a store path: two ingests into one path never interleave.

While :func:`~textvae.data.ingest.build_store` writes a store, a lock file beside it,
``<store>.lock`` (``/data/imdb.zarr.lock``, ``s3://bucket/imdb.zarr.lock``), names the build:
``{"pid": ..., "host": ..., "started": ..., "store": ...}``. It is created exclusively, complete
or not at all: locally by hard-linking a fully written temporary file to the lock's name (a link
fails if the name exists), on object storage by a conditional PUT (``If-None-Match: *``, which
AWS S3, MinIO and moto honour). A second build of the same path finds it and refuses with
:class:`~textvae.errors.StoreLockedError` naming the first. The lock is removed when the build
ends, however it ends, except when the process is killed: a lock whose process is gone (same
host, pid no longer running) is taken over with a note. A lock from another host cannot be
checked and is never taken over: the message says which file to delete.

On object storage taking over a dead build's lock is not atomic (a read, then a delete): two
ingests started in the same instant after a crash could both take it. Locally it is (a rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from textvae.data.location import is_url, remote_fs
from textvae.errors import StoreLockedError

__all__ = [
    "LOCK_SUFFIX",
    "LockOwner",
    "StoreLock",
    "current_builder",
    "lock_owner",
    "lock_path",
    "store_lock",
]

LOCK_SUFFIX = ".lock"
_TAKE_TRIES = 5


def lock_path(path: str) -> str:
    """Where the lock of the store at ``path`` lives: ``<path>.lock``, beside the store."""
    return path.rstrip("/") + LOCK_SUFFIX


@dataclass(frozen=True)
class LockOwner:
    """Who holds a store's lock: a process ``pid`` on ``host``, since ``started`` (ISO 8601)."""

    pid: int
    host: str
    started: str

    @classmethod
    def current(cls) -> LockOwner:
        """This process, now."""
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.now().astimezone().isoformat(timespec="seconds"),
        )

    def is_alive(self) -> bool | None:
        """Whether the process still runs: ``None`` when it is on another host (unknowable)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user: it exists
            return True
        try:  # a killed child not yet reaped by its parent still answers kill(0)
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except (OSError, IndexError):
            return True

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


def _parse(data: bytes) -> LockOwner | None:
    try:
        record = json.loads(data)
        return LockOwner(int(record["pid"]), str(record["host"]), str(record["started"]))
    except (ValueError, TypeError, KeyError):
        return None


class _LocalFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def create(self, data: bytes) -> bool:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, self.path)  # atomic, and the lock appears complete
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def read(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def take_over(self, stale: bytes) -> bool:
        # Rename first: of several processes taking over the same stale lock, one wins. A lock
        # created afresh in between is put back (a link fails if yet another one appeared).
        grave = f"{self.path}.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return False
        with open(grave, "rb") as f:
            taken = f.read()
        if taken != stale:
            with contextlib.suppress(FileExistsError):
                os.link(grave, self.path)
        os.unlink(grave)
        return taken == stale

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _RemoteFile:
    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def create(self, data: bytes) -> bool:
        try:
            self.fs.pipe_file(self.path, data, mode="create")
            return True
        except FileExistsError:
            return False

    def read(self) -> bytes | None:
        try:
            return self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None

    def take_over(self, stale: bytes) -> bool:
        if self.read() != stale:
            return False
        self.delete()
        return True

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path)


def _file(path: str, fs: Any | None, inner: str | None) -> _LocalFile | _RemoteFile:
    if fs is None:
        return _LocalFile(lock_path(path))
    return _RemoteFile(fs, lock_path(inner if inner is not None else path))


def lock_owner(path: str, fs: Any | None = None, inner: str | None = None) -> LockOwner | None:
    """Who holds the lock of the store at ``path`` (``None``: nobody, or not a textvae lock).

    ``fs`` / ``inner``: the fsspec filesystem and the path within it, for a URL.
    """
    data = _file(path, fs, inner).read()
    return None if data is None else _parse(data)


def current_builder(path: str, storage_options: Mapping[str, Any] | None = None) -> str | None:
    """Who is building the store at ``path`` now (its lock's owner, unless known to be gone),
    for an error message; None when nobody is, or when that cannot be told."""
    try:
        fs, inner = remote_fs(path, storage_options) if is_url(path) else (None, None)
        owner = lock_owner(path, fs, inner)
    except Exception:  # only a hint for the message: never in the way of the real error
        return None
    if owner is None or owner.is_alive() is False:
        return None
    return str(owner)


def store_lock(
    path: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> StoreLock:
    """The :class:`StoreLock` of the store at ``path`` (a local path or a URL)."""
    if not is_url(path):
        return StoreLock(path, log=log)
    fs, inner = remote_fs(path, storage_options)
    return StoreLock(path, fs=fs, inner=inner, log=log)


class StoreLock:
    """The lock of the store at ``path``, held while it is built; a context manager.

    The machinery locks any path: a subclass changes what the lock file records
    (:attr:`record_key`) and the lines it refuses with (:meth:`held_error`, :meth:`foreign_error`,
    :meth:`contended_error`, :meth:`takeover_note`); the run folder's lock
    (:class:`textvae.training.run.RunLock`) is one.

    Parameters
    ----------
    path
        The store's local path or URL (as the user gave it: messages name it).
    fs, inner
        For a URL: its fsspec filesystem and the store's path within it.
    log
        Called with one line when the lock of a build that is gone is taken over.
    """

    #: The key of the locked path in the lock file's record.
    record_key = "store"

    def __init__(
        self,
        path: str,
        *,
        fs: Any | None = None,
        inner: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.lock_path = lock_path(path)
        self._file = _file(path, fs, inner)
        self._log = log
        self._held: bytes | None = None

    def held_error(self, holder: LockOwner) -> Exception:
        """The error when ``holder``, running (or on another host), holds the lock."""
        return StoreLockedError(
            f"{self.path} is being built by another ingest ({holder}): wait for it to "
            f"finish; if it is no longer running, delete {self.lock_path} and run again"
        )

    def foreign_error(self) -> Exception:
        """The error when the lock file is not a textvae lock."""
        return StoreLockedError(
            f"{self.lock_path} exists but is not a textvae lock: if no ingest into "
            f"{self.path} is running, delete it and run again"
        )

    def contended_error(self) -> Exception:
        """The error when other processes keep taking the lock first."""
        return StoreLockedError(
            f"could not take the lock {self.lock_path}: other ingests into {self.path} keep "
            "taking it; run one at a time"
        )

    def takeover_note(self, holder: LockOwner) -> str:
        """The line logged when the lock of ``holder``, no longer running, is taken over."""
        return (
            f"note: took over the lock {self.lock_path} of an ingest that is no "
            f"longer running ({holder})"
        )

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        StoreLockedError
            Another build of ``path`` holds it (running, or on another host); a subclass
            raises its own errors (:meth:`held_error`, ...).
        """
        owner = LockOwner.current()
        record = json.dumps({**asdict(owner), self.record_key: self.path}).encode()
        for _ in range(_TAKE_TRIES):
            if self._file.create(record):
                self._held = record
                return
            data = self._file.read()
            if data is None:
                continue  # released meanwhile
            holder = _parse(data)
            if holder is None:
                raise self.foreign_error()
            if holder.is_alive() is False:
                if self._file.take_over(data) and self._log is not None:
                    self._log(self.takeover_note(holder))
                continue
            raise self.held_error(holder)
        raise self.contended_error()

    def release(self) -> None:
        """Remove the lock if this object holds it.

        A lock that cannot be removed (object storage gone) is left, with a note: the next
        build on this host takes it over once this process has ended.
        """
        held, self._held = self._held, None
        if held is None:
            return
        try:
            if self._file.read() == held:
                self._file.delete()
        except Exception as err:  # never mask the build's own outcome or error
            if self._log is not None:
                self._log(f"note: could not remove the lock {self.lock_path} ({err})")

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
