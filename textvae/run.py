"""The run folder (``textvae-train --out``): its files and every rule about them, in one place.

=================  ============================================================================
``config.json``    the run's configuration and the store's attributes (checked on ``--resume``)
``vocab.json``     the store's vocabulary, id -> token (for ``textvae-sample``)
``best.keras``     the model with the lowest ``val_loss`` (or training loss) this session
``last.keras``     the model after the last finished epoch, with its optimizer state
``state.json``     ``{"epochs_done": k}``, written after ``last.keras`` and the history row
``history.csv``    one row per finished epoch: ``epoch`` and the epoch's logs (loss, ``kl``, ...)
``metrics.json``   test metrics (:func:`textvae.evaluate.evaluate_vae`), run size and timings
``latents.png``    test latent means projected to 2-D with PCA, coloured by sentiment
=================  ============================================================================

Files a reader may find half-written are written atomically (a temporary file, then
``os.replace``): ``state.json``, ``config.json``, ``vocab.json``, ``metrics.json`` and the two
models. ``state.json`` is the commit mark of an epoch: written last, it never names an epoch
whose ``last.keras`` is not on disk.

This module imports Keras only to load a model (:meth:`RunDir.load_model`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textvae.errors import CheckpointError, OutputDirError

if TYPE_CHECKING:
    import keras

    from textvae.config import TrainConfig

__all__ = [
    "ARTEFACTS",
    "BEST",
    "CONFIG",
    "HISTORY",
    "LAST",
    "LATENTS",
    "METRICS",
    "STATE",
    "VOCAB",
    "RunDir",
]

CONFIG = "config.json"
VOCAB = "vocab.json"
BEST = "best.keras"
LAST = "last.keras"
STATE = "state.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
LATENTS = "latents.png"
#: Every file a run writes: a folder holding any of them holds a run.
ARTEFACTS = (CONFIG, VOCAB, BEST, LAST, STATE, HISTORY, METRICS, LATENTS)
#: Run settings a checkpoint is built or compiled for: they must match on ``--resume``.
_RUN_FIELDS = ("vocab_size", "max_len", "targets")
#: Model sizes that must match between a checkpoint and the configuration resuming it.
_SHAPE_FIELDS = ("embedding_dim", "hidden", "dense", "latent", "decoder", "encoder_pooling")
#: What runs of textvae 0.1, whose config.json predates these fields, trained.
_SAVED_BEFORE_0_2 = {"decoder": "repeat", "encoder_pooling": False}
#: Where to look for a run, said in every "missing file" message.
_POINT_AT_A_RUN = "point at the --out folder of a `textvae-train` run"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """The folder of one training run: where each artefact lives and how it is read and written.

    ``textvae-train`` (single process and multi-worker), its callbacks
    (:class:`textvae.callbacks.RunCheckpoint`) and ``textvae-sample`` all go through this class,
    so the file names and formats are defined here only.

    Parameters
    ----------
    path
        The folder (``--out``); nothing is created until :meth:`prepare`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def file(self, name: str) -> Path:
        """The path of the artefact ``name`` (one of :data:`ARTEFACTS`) in this run."""
        return self.path / name

    def existing(self) -> list[str]:
        """The artefacts present in the folder, in :data:`ARTEFACTS` order."""
        return [name for name in ARTEFACTS if (self.path / name).exists()]

    # -- the folder ---------------------------------------------------------------------------
    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Create the folder (check that it is writable) before a run writes to it.

        A folder that already holds a run is refused unless ``resume`` (continue it) or
        ``overwrite`` (its artefacts are deleted first).

        Raises
        ------
        OutputDirError
            The folder cannot be created or written, or holds a run and neither ``resume``
            nor ``overwrite`` is given.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".textvae-write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise OutputDirError(
                f"cannot write to --out {self.path} ({err.strerror or err}): "
                "choose a writable directory"
            ) from None
        existing = self.existing()
        if existing and not (resume or overwrite):
            raise OutputDirError(
                f"--out {self.path} already holds a run ({', '.join(existing)}): pass --resume "
                "to continue it, --overwrite to replace it, or choose another --out"
            )
        if overwrite:
            for name in existing:
                (self.path / name).unlink()

    def check_resumable(self, config: TrainConfig) -> int:
        """Epochs already done by this run, after checking that ``config`` can continue it.

        Parameters
        ----------
        config
            The configuration of the run that resumes: its ``vocab_size``, ``max_len``,
            ``targets`` and model sizes must be the checkpoint's.

        Returns
        -------
        int
            ``epochs_done`` from ``state.json``: the epoch to resume at (0-based).

        Raises
        ------
        CheckpointError
            No checkpoint (``state.json`` and ``last.keras``), a damaged ``state.json`` or
            ``config.json``, or a checkpoint of other sizes.
        """
        if not (self.file(STATE).exists() and self.file(LAST).exists()):
            raise CheckpointError(
                f"--resume: {self.path} has no checkpoint to resume ({STATE} and {LAST}); "
                "run without --resume to start a new run"
            )
        saved = self.read_config()
        ours = config.to_dict()
        for key in _RUN_FIELDS:  # the checkpoint is compiled for its targets
            if saved.get(key) != ours[key]:
                raise CheckpointError(
                    f"--resume: the checkpoint in {self.path} has {key}={saved.get(key)}, this "
                    f"run asks {key}={ours[key]}: use the checkpoint's value or another --out"
                )
        saved_model = {**_SAVED_BEFORE_0_2, **(saved.get("model") or {})}
        for key in _SHAPE_FIELDS:
            if saved_model.get(key) != ours["model"][key]:
                raise CheckpointError(
                    f"--resume: the checkpoint in {self.path} has {key}={saved_model.get(key)}, "
                    f"this run asks {key}={ours['model'][key]}: use the checkpoint's sizes or "
                    "another --out"
                )
        return self.read_state()

    # -- models -------------------------------------------------------------------------------
    def load_model(self, name: str = BEST) -> keras.Model:
        """Load the model ``name`` (``best.keras`` or ``last.keras``) of this run.

        Raises
        ------
        CheckpointError
            The file is missing, damaged, or not a :class:`~textvae.model.TextVAE`.
        """
        import keras

        from textvae.model import TextVAE  # registers textvae's Keras classes for loading

        path = self._existing_file(name)
        try:
            model = keras.models.load_model(path)
        except Exception as err:  # a damaged or foreign file: many exception types
            raise CheckpointError(
                f"cannot load the checkpoint {path} ({type(err).__name__}: {err}): the file is "
                "damaged; start the run again (--overwrite) or use its other checkpoint"
            ) from None
        if not isinstance(model, TextVAE):
            raise CheckpointError(
                f"{path} holds a {type(model).__name__}, not a textvae model: {_POINT_AT_A_RUN}"
            )
        return model

    def save_model(self, model: keras.Model, name: str) -> Path:
        """Save ``model`` as ``name`` atomically: a reader never sees half a file."""
        path = self.file(name)
        tmp = path.with_name(path.name + ".tmp.keras")  # Keras wants the .keras suffix
        model.save(tmp)
        os.replace(tmp, path)
        return path

    # -- JSON files ---------------------------------------------------------------------------
    def write_config(self, config: TrainConfig, store_attrs: Mapping[str, Any]) -> None:
        """Write ``config.json``: the run's configuration and the store's attributes."""
        saved = {**config.to_dict(), "store_attrs": dict(store_attrs)}
        _write_atomic(self.file(CONFIG), json.dumps(saved, indent=2))

    def read_config(self) -> dict[str, Any]:
        """The saved configuration (``TrainConfig.to_dict()`` plus ``store_attrs``)."""
        config = self._read_json(CONFIG)
        if not isinstance(config, dict):
            raise self._damaged(CONFIG, "not a JSON object")
        return config

    def store_attrs(self) -> dict[str, Any]:
        """The attributes of the store the run trained on (``padding``, ``truncating``, ...)."""
        return dict(self.read_config().get("store_attrs") or {})

    def write_vocab(self, tokens: Iterable[str]) -> None:
        """Write ``vocab.json``: the tokens in id order."""
        _write_atomic(self.file(VOCAB), json.dumps(list(tokens)))

    def read_vocab(self) -> tuple[str, ...]:
        """The run's tokens in id order (``Vocabulary(run.read_vocab())`` rebuilds it)."""
        tokens = self._read_json(VOCAB)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise self._damaged(VOCAB, "not a JSON list of tokens")
        return tuple(tokens)

    def write_state(self, epochs_done: int) -> None:
        """Write ``state.json``: ``epochs_done`` epochs are finished and in ``last.keras``."""
        _write_atomic(self.file(STATE), json.dumps({"epochs_done": int(epochs_done)}))

    def read_state(self) -> int:
        """``epochs_done`` from ``state.json``.

        Raises
        ------
        CheckpointError
            The file is missing or damaged (not ``{"epochs_done": <integer >= 0>}``).
        """
        state = self._read_json(STATE)
        done = state.get("epochs_done") if isinstance(state, dict) else None
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise self._damaged(STATE, 'expected {"epochs_done": <integer >= 0>}')
        return done

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Write ``metrics.json``."""
        _write_atomic(self.file(METRICS), json.dumps(dict(metrics), indent=2))

    # -- history.csv --------------------------------------------------------------------------
    def clear_history(self) -> None:
        """Delete ``history.csv`` (a new training session that does not continue one)."""
        self.file(HISTORY).unlink(missing_ok=True)

    def append_history(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Append epoch ``epoch``'s row (a header first if the file is new): ``epoch`` and the
        logs' keys in sorted order, as Keras' ``CSVLogger`` writes them."""
        path = self.file(HISTORY)
        keys = sorted(logs)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", *keys])
            writer.writerow([epoch, *(logs[k] for k in keys)])

    # -- helpers ------------------------------------------------------------------------------
    def _existing_file(self, name: str) -> Path:
        path = self.file(name)
        if not path.exists():
            raise CheckpointError(f"{path} does not exist: {_POINT_AT_A_RUN}")
        return path

    def _read_json(self, name: str) -> Any:
        path = self._existing_file(name)
        try:
            return json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self._damaged(name, f"not valid JSON: {err}") from None

    def _damaged(self, name: str, why: str) -> CheckpointError:
        return CheckpointError(
            f"{self.file(name)} is damaged ({why}): restore it, or start the run again with "
            "--overwrite"
        )
