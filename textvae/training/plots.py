"""The run's picture: test latent means projected to 2-D with PCA, coloured by sentiment.

matplotlib is an optional extra (``pip install "textvae[plot]"``): it is imported only when a
picture is drawn, and a run without it skips ``latents.png`` with one line saying so.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

__all__ = ["PLOT_EXTRA", "plot_latents", "plot_latents_if_possible"]

#: What installs matplotlib for textvae.
PLOT_EXTRA = 'pip install "textvae[plot]"'


def plot_latents(z_means: np.ndarray, labels: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Scatter of the latent means projected to 2-D with PCA, coloured by sentiment (a PNG).

    Raises
    ------
    ModuleNotFoundError
        matplotlib is not installed (:data:`PLOT_EXTRA` installs it).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    centred = z_means - z_means.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    explained = (s[:2] ** 2) / max(float((s**2).sum()), 1e-12)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for value, colour, name in ((0, "tab:red", "negative"), (1, "tab:blue", "positive")):
        sel = labels == value
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, alpha=0.4, c=colour, label=name, linewidths=0)
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)" if len(explained) > 1 else "PC 2")
    ax.set_title(f"Test reviews in latent space (PCA of z_mean, n={len(labels):,})")
    ax.legend(markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latents_if_possible(
    z_means: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    log: Callable[[str], None] = print,
) -> bool:
    """:func:`plot_latents`, or one ``log`` line naming :data:`PLOT_EXTRA` when matplotlib is
    not installed (a run's results stand without the picture). Returns whether it drew."""
    try:
        plot_latents(z_means, labels, path)
    except ImportError as err:
        if (err.name or "").partition(".")[0] != "matplotlib":
            raise  # a broken install, not a missing one
        log(f"{os.path.basename(path)} not drawn: matplotlib is not installed ({PLOT_EXTRA})")
        return False
    return True
