"""Where ``textvae-train --out RUN --overwrite`` keeps the run it replaces: nothing is lost.

:meth:`~textvae.training.run.RunDir.prepare` moves the old run's artefacts into
``RUN/.textvae-replaced/`` (:func:`set_aside`, ``state.json`` first) instead of deleting them.
The new run's first committed checkpoint (its ``state.json`` written) deletes that folder
(:func:`settle` with ``committed``). If the new run fails or is killed before, the folder stays,
and the next ``prepare`` of ``RUN`` (any ``textvae-train --out RUN``) moves the old run back
in place of the new run's first files (deleted: no checkpoint names them): a failed overwrite
leaves the old run as it was, and ``--resume`` continues it.

A kill at any moment loses nothing. ``state.json`` moves first, so a ``state.json`` in ``RUN``
beside the folder is the new run's commit (or, killed before the first move, the old run's,
with nothing moved): then the folder is deleted. :data:`MOVED` is written into the folder
once every file is in it: without it (killed while moving) the files still in ``RUN`` are the
old run's and stay, with it they are the new run's and go.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["MOVED", "REPLACED", "set_aside", "settle"]

#: The folder inside a run where ``--overwrite`` keeps the run it replaces.
REPLACED = ".textvae-replaced"
#: Written in :data:`REPLACED` once all the old run's files are in it.
MOVED = ".moved"


def set_aside(path: Path, names: list[str], *, first: str) -> None:
    """Move the files ``names`` of the run at ``path`` into :data:`REPLACED`, ``first`` first."""
    aside = path / REPLACED
    aside.mkdir()
    for name in sorted(names, key=lambda name: name != first):
        os.replace(path / name, aside / name)
    (aside / MOVED).touch()


def settle(path: Path, *, committed: bool, current: list[str] = ()) -> None:
    """Settle what an ``--overwrite`` left at ``path``: if the new run ``committed`` a
    checkpoint, delete the old run; else delete the new run's files ``current`` (the run files
    now in ``path``) and move the old run back."""
    aside = path / REPLACED
    if not aside.is_dir():
        return
    if committed:
        shutil.rmtree(aside)
        return
    if (aside / MOVED).exists():
        for name in current:
            (path / name).unlink(missing_ok=True)
        (aside / MOVED).unlink()
    for moved in aside.iterdir():
        os.replace(moved, path / moved.name)
    aside.rmdir()
