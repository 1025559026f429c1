"""``history.csv`` of a run folder: one row per finished epoch, ``epoch`` (0-based) and the
epoch's logs in sorted order, as Keras' ``CSVLogger`` writes them. :class:`~.run.RunDir` reads
and writes the file; these functions are its rules."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

__all__ = ["append_row", "best_epoch", "trimmed"]


def append_row(path: Path, epoch: int, logs: Mapping[str, float]) -> None:
    """Append epoch ``epoch``'s row to ``path``, a header first if the file is new."""
    keys = sorted(logs)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["epoch", *keys])
        writer.writerow([epoch, *(logs[k] for k in keys)])


def trimmed(text: str, epochs_done: int) -> str | None:
    """``text`` with only its header and the rows of epochs ``< epochs_done``; ``None`` when
    that is all it holds already."""
    rows = list(csv.reader(text.splitlines()))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs_done]
    if len(kept) == len(rows):
        return None
    out = io.StringIO()
    csv.writer(out).writerows(kept)
    return out.getvalue()


def best_epoch(text: str, monitor: str) -> int | None:
    """The epoch (1-based) of the first row with the lowest finite ``monitor``: the rule that
    saves ``best.keras``. ``None`` when no row has one."""
    best: tuple[float, int] | None = None
    for row in csv.DictReader(text.splitlines()):
        try:
            value, epoch = float(row.get(monitor) or "nan"), int(row["epoch"])
        except (KeyError, ValueError):
            continue
        if value == value and (best is None or value < best[0]):  # NaN never counts
            best = (value, epoch + 1)
    return None if best is None else best[1]
