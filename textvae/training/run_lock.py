"""The lock of a run folder (:class:`RunLock`), taken by the process that writes the folder.

:class:`textvae.training.run.RunDir` hands it out (``run.lock()``) and names it there too.
"""

from __future__ import annotations

from textvae.data.lock import LockOwner, StoreLock
from textvae.errors import OutputDirError, RunLockedError, TextVAEError

__all__ = ["RunLock"]


class RunLock(StoreLock):
    """The lock of a run folder, ``<out>.lock`` beside it: held by the process that writes the
    folder (``textvae-train``, the chief of a multi-worker run), for the whole run.

    The store lock's machinery (:class:`textvae.data.lock.StoreLock`: created complete or not
    at all, the lock of a process gone from this host taken over with a note), with the run
    folder's lines; a lock that cannot be created is an :class:`OutputDirError`.
    """

    record_key = "run"

    def held_error(self, holder: LockOwner) -> Exception:
        return RunLockedError(
            f"--out {self.path} is in use by another textvae-train ({holder}): wait for it to "
            f"finish or stop it; if it is no longer running, delete {self.lock_path} and run "
            "again"
        )

    def foreign_error(self) -> Exception:
        return RunLockedError(
            f"{self.lock_path} exists but is not a textvae lock: if no textvae-train on --out "
            f"{self.path} is running, delete it and run again"
        )

    def contended_error(self) -> Exception:
        return RunLockedError(
            f"could not take the lock {self.lock_path}: other textvae-train commands on --out "
            f"{self.path} keep taking it; run one at a time"
        )

    def takeover_note(self, holder: LockOwner) -> str:
        return (
            f"note: took over the lock {self.lock_path} of a textvae-train that is no longer "
            f"running ({holder})"
        )

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        RunLockedError
            Another process holds it (running, or on another host), or it is not a textvae lock.
        OutputDirError
            The lock file cannot be created beside the folder.
        """
        try:
            super().acquire()
        except TextVAEError:
            raise
        except OSError as err:
            raise OutputDirError(
                f"cannot write to --out {self.path} (its lock {self.lock_path}: "
                f"{err.strerror or err}): choose a writable directory"
            ) from None
