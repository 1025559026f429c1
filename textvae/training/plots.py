"""The run's picture: test latent means projected to 2-D with PCA, coloured by sentiment.

matplotlib is an optional extra (``pip install "textvae[plot]"``): it is imported only when a
picture is drawn, and a run without it skips ``latents.png`` with one line saying so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PLOT_EXTRA",
    "LatentsView",
    "latents_title",
    "latents_view",
    "plot_latents",
    "plot_latents_if_possible",
    "robust_limits",
    "share_text",
]

#: What installs matplotlib for textvae.
PLOT_EXTRA = 'pip install "textvae[plot]"'
#: The percentiles the axes of latents.png span (a few far points would shrink the rest).
PERCENTILES = (1.0, 99.0)
#: Share of that span added on each side, so points at the percentiles are not on the frame.
MARGIN = 0.05
#: label -> (colour, name) of the points drawn, in drawing order.
_CLASSES = {-1: ("tab:gray", "unlabelled"), 0: ("tab:red", "negative"), 1: ("tab:blue", "positive")}


def share_text(share: float) -> str:
    """A share of variance as a percentage to one decimal; a share that is not zero never
    reads 0.0% (``<0.1%``), nor a share short of all 100.0% (``>99.9%``)."""
    if 0 < share < 0.0005:
        return "<0.1%"
    if 0.9995 <= share < 1:
        return ">99.9%"
    return f"{share:.1%}"


def robust_limits(
    xy: np.ndarray, percentiles: tuple[float, float] = PERCENTILES, margin: float = MARGIN
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """``(xlim, ylim, outside)``: each axis spans the ``percentiles`` of its coordinates widened
    by ``margin`` of that span on each side; ``outside`` counts the points beyond either.

    A constant coordinate spans +-1 around its value; no points span (-1, 1).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    limits = []
    for column in xy.T:
        if column.size == 0:
            limits.append((-1.0, 1.0))
            continue
        low, high = (float(v) for v in np.percentile(column, percentiles))
        pad = (high - low) * margin
        limits.append((low - pad, high + pad) if high > low else (low - 1.0, high + 1.0))
    (x0, x1), (y0, y1) = limits
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    return limits[0], limits[1], int(np.count_nonzero(~inside))


def latents_title(run: str | None, split: str, reviews: int, accuracy: float | None) -> str:
    """The picture's title: the run, the split and its size, the sentiment accuracy."""
    named = f"{run}: " if run else ""
    score = "n/a (no labelled review)" if accuracy is None else f"{accuracy:.3f}"
    return (
        f"{named}{reviews:,} {split} reviews in latent space (PCA of z_mean)\n"
        f"sentiment accuracy on these reviews: {score}"
    )


@dataclass(frozen=True)
class LatentsView:
    """What ``latents.png`` shows, computed apart from the drawing (and tested so).

    Attributes
    ----------
    xy
        (reviews, 2): the latent means on their first two principal components.
    shares
        The share of the variance along each of the two.
    xlim, ylim, outside
        The axes' spans and the points beyond them (:func:`robust_limits`).
    title, xlabel, ylabel, note
        The texts: the title (:func:`latents_title`), the axes' labels with the shares
        (:func:`share_text`), and the line saying how many points fall outside.
    """

    xy: np.ndarray
    shares: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    outside: int
    title: str
    xlabel: str
    ylabel: str
    note: str


def latents_view(
    z_means: np.ndarray,
    labels: np.ndarray,
    *,
    run: str | None = None,
    split: str = "test",
    accuracy: float | None = None,
) -> LatentsView:
    """The :class:`LatentsView` of the latent means ``z_means`` (reviews, latent)."""
    z = np.asarray(z_means, dtype=np.float64).reshape(len(labels), -1)
    if z.size == 0:
        centred, s, vt = z, np.zeros(0), np.zeros((0, z.shape[1]))
    else:
        centred = z - z.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = np.zeros((len(z), 2))
    xy[:, : min(2, vt.shape[0])] = centred @ vt[:2].T
    variance = s**2
    total = float(variance.sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in variance[:2]]
    shares += [0.0] * (2 - len(shares))
    xlim, ylim, outside = robust_limits(xy)
    low, high = PERCENTILES
    note = (
        f"axes span percentiles {low:g} to {high:g} of each component: {outside:,} of "
        f"{len(xy):,} points fall outside them"
    )
    return LatentsView(
        xy=xy,
        shares=(shares[0], shares[1]),
        xlim=xlim,
        ylim=ylim,
        outside=outside,
        title=latents_title(run, split, len(xy), accuracy),
        xlabel=f"PC 1 ({share_text(shares[0])} of variance)",
        ylabel=f"PC 2 ({share_text(shares[1])} of variance)",
        note=note,
    )


def plot_latents(
    z_means: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    *,
    run: str | None = None,
    split: str = "test",
    accuracy: float | None = None,
) -> None:
    """Scatter of the latent means projected to 2-D with PCA, coloured by sentiment (a PNG):
    the axes clipped to the 1st-99th percentiles (the count outside is written under them),
    the variance shares to one decimal, the run, the split and the accuracy in the title.

    Raises
    ------
    ModuleNotFoundError
        matplotlib is not installed (:data:`PLOT_EXTRA` installs it).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    view = latents_view(z_means, labels, run=run, split=split, accuracy=accuracy)
    labels = np.asarray(labels).ravel()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    for value, (colour, name) in _CLASSES.items():
        sel = labels == value
        if value == -1 and not sel.any():
            continue
        xy = view.xy[sel]
        ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.4, c=colour, label=name, linewidths=0)
    ax.set_xlim(*view.xlim)
    ax.set_ylim(*view.ylim)
    ax.set_xlabel(view.xlabel)
    ax.set_ylabel(view.ylabel)
    ax.set_title(view.title, fontsize=10)
    ax.legend(markerscale=4, loc="upper right")
    fig.text(0.01, 0.01, view.note, fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def plot_latents_if_possible(
    z_means: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    log: Callable[[str], None] = print,
    **named: object,
) -> bool:
    """:func:`plot_latents`, or one ``log`` line naming :data:`PLOT_EXTRA` when matplotlib is
    not installed (a run's results stand without the picture). Returns whether it drew.
    ``named``: ``run``, ``split`` and ``accuracy``, as :func:`plot_latents` takes them."""
    try:
        plot_latents(z_means, labels, path, **named)
    except ImportError as err:
        if (err.name or "").partition(".")[0] != "matplotlib":
            raise  # a broken install, not a missing one
        log(f"{os.path.basename(path)} not drawn: matplotlib is not installed ({PLOT_EXTRA})")
        return False
    return True
