"""The run folder (``textvae-train --out``): its files and every rule about them, in one place.

======================  ============================================================================
``config.json``         the run's configuration and the store's attributes (checked on ``--resume``)
``vocab.json``          the store's vocabulary, id -> token (for ``textvae-sample``)
``best.keras``          the model of the epoch with the lowest ``val_selection`` (validation loss
                        and sentiment accuracy together), or training loss without validation
``last.keras``          the model after the last finished epoch, with its optimizer state
``checkpoint-N.keras``  mid-epoch: the model after training step N (``--checkpoint-steps``,
                        ``--checkpoint-minutes``, a signal), with its optimizer state
``state.json``          where training stands (:class:`TrainingState`): epochs and batches done,
                        the model file to resume from, random streams, the partial epoch's metrics
``history.csv``         one row per finished epoch: ``epoch`` and the epoch's logs (``loss``, ...)
``metrics.json``        test metrics (:func:`~.evaluate.evaluate_vae`), the run's size and timings
``latents.png``         test latent means projected to 2-D with PCA, coloured by sentiment
======================  ============================================================================

Files a reader may find half-written are written atomically (a temporary file, flushed to
disk, then ``os.replace``): ``state.json``, ``config.json``, ``vocab.json``, ``metrics.json``
and the models. ``state.json`` is the commit mark of a checkpoint: it is written after the
model file it names, and a model file is never replaced while ``state.json`` names it
(:meth:`RunDir.save_checkpoint`), so a kill at any moment leaves a ``state.json`` whose model
is complete and matches it. What a kill can leave beside it (a temporary file, a newer
``checkpoint-N.keras`` not yet committed, a ``history.csv`` row of an uncommitted epoch) is
removed when the run resumes (:meth:`RunDir.recover`).

One process writes a run folder at a time: ``textvae-train`` (the chief of a multi-worker run)
holds its lock, ``<out>.lock`` beside it (:class:`RunLock`, the store lock's machinery:
pid, host and start time; the lock of a process that is gone, on this host, is taken over with
a note), from before it prepares the folder until it ends. A second ``textvae-train`` on the
folder (``--resume`` and ``--overwrite`` too) is refused naming the first. Readers
(``textvae-sample``) take no lock: they read the models, which are replaced atomically, so they
always read the last complete one.

This module imports Keras only to load a model (:meth:`RunDir.load_model`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textvae.data.lock import LockOwner, lock_owner
from textvae.errors import CheckpointError, OutputDirError
from textvae.training import history, replaced
from textvae.training.run_lock import RunLock
from textvae.training.state import CHECKPOINT as _CHECKPOINT
from textvae.training.state import LAST, TrainingState, checkpoint_name
from textvae.training.state import compact as _compact

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
    "RunLock",
    "TrainingState",
]

CONFIG = "config.json"
VOCAB = "vocab.json"
BEST = "best.keras"
STATE = "state.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
LATENTS = "latents.png"
#: Every file a run writes: a folder holding any of them holds a run (mid-epoch checkpoints,
#: ``checkpoint-N.keras``, too: see :meth:`RunDir.existing`).
ARTEFACTS = (CONFIG, VOCAB, BEST, LAST, STATE, HISTORY, METRICS, LATENTS)
#: What atomic writes leave behind when killed: ``<name>.tmp`` and ``<name>.tmp.keras``.
_TEMPORARY = re.compile(r".+\.tmp(\.keras)?")
#: Settings that fix which rows each batch holds: a run stopped mid-epoch resumes only with
#: the same ones, or its remaining batches would not be the ones it had left.
_ORDER_FIELDS = ("seed", "batch_size", "train_rows", "val_fraction")
#: Run settings a checkpoint is built or compiled for: they must match on ``--resume``.
_RUN_FIELDS = ("vocab_size", "max_len", "targets")
#: Model sizes that must match between a checkpoint and the configuration resuming it.
_SHAPE_FIELDS = (
    "embedding_dim",
    "hidden",
    "dense",
    "latent",
    "decoder",
    "decoder_cell",
    "encoder_pooling",
    "encoder_layers",
    # Not a size, but the checkpoint's optimizer holds either a constant learning rate or a
    # schedule of it (a variable or none): the other kind cannot take over its state.
    "lr_schedule",
)
#: What runs whose config.json predates these fields trained: textvae 0.1's decoder, a GRU
#: before ``decoder_cell``, a constant learning rate before ``lr_schedule``, two BiLSTM layers
#: before ``encoder_layers``.
_SAVED_BEFORE_0_2 = {
    "decoder": "repeat",
    "encoder_pooling": False,
    "decoder_cell": "gru",
    "lr_schedule": "constant",
    "encoder_layers": 2,
}
#: Where to look for a run, said in every "missing file" message.
_POINT_AT_A_RUN = "point at the --out folder of a `textvae-train` run"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    _fsync(tmp)
    os.replace(tmp, path)


class RunDir:
    """The folder of one training run: where each artefact lives and how it is read and written.

    ``textvae-train`` (single process and multi-worker), its callbacks
    (:class:`textvae.training.callbacks.RunCheckpoint`) and ``textvae-sample`` all go through this
    class, so the file names and formats are defined here only.

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
        """The artefacts present in the folder, in :data:`ARTEFACTS` order, then any mid-epoch
        checkpoints (``checkpoint-N.keras``)."""
        return [name for name in ARTEFACTS if (self.path / name).exists()] + self._checkpoints()

    def _checkpoints(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if _CHECKPOINT.fullmatch(p.name))

    # -- the folder ---------------------------------------------------------------------------
    def lock(self, log: Callable[[str], None] | None = None) -> RunLock:
        """The folder's :class:`RunLock` (``with run.lock(log=print): ...`` holds it): take it
        before :meth:`prepare` and hold it while the run writes the folder.

        ``log`` receives the line saying that the lock of a run that is gone was taken over.
        """
        return RunLock(self._lock_key(), log=log)

    def _lock_key(self) -> str:
        # Every spelling of the folder (relative, ".", through a link) has one lock.
        try:
            return os.fspath(self.path.resolve())
        except (OSError, RuntimeError):  # a loop of links: prepare() says what is wrong
            return os.path.abspath(self.path)

    def lock_holder(self) -> LockOwner | None:
        """Who holds the folder's lock and still runs (or runs on another host, where that
        cannot be told); ``None`` when nobody does."""
        try:
            owner = lock_owner(self._lock_key())
        except OSError:
            return None
        return None if owner is None or owner.is_alive() is False else owner

    def check_unlocked(self) -> None:
        """Refuse early, before anything heavy is imported, when a running process holds the
        folder's lock. This only looks: :meth:`lock` still has to be taken (and also refuses a
        lock file that is not a textvae lock).

        Raises
        ------
        RunLockedError
            The holder runs, or runs on another host.
        """
        holder = self.lock_holder()
        if holder is not None:
            raise self.lock().held_error(holder)

    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Create the folder (check that it is writable) before a run writes to it.

        A folder that already holds a run is refused unless ``resume`` (continue it) or
        ``overwrite`` (replace it). The run ``overwrite`` replaces is moved into
        :data:`~.replaced.REPLACED` inside the folder and deleted when the new run commits its first
        checkpoint (:meth:`save_checkpoint`); if the new run ends before that, the next
        ``prepare`` of the folder (any ``textvae-train --out`` on it) moves the old run back.

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
        replaced.settle(self.path, committed=self.file(STATE).exists(), current=self.existing())
        existing = self.existing()
        if existing and not (resume or overwrite):
            raise self._holds_a_run(existing)
        if overwrite and existing:
            replaced.set_aside(self.path, existing, first=STATE)

    def check_startable(self, config: TrainConfig) -> None:
        """The refusals of :meth:`prepare` and :meth:`check_resumable` that read and write
        nothing, for a command to give before it imports Keras (seconds): ``--out`` is not a
        folder; it holds a run and ``config`` neither resumes nor overwrites it; ``--resume``
        finds no checkpoint that ``config`` can continue. :meth:`prepare` still decides.

        Raises
        ------
        OutputDirError, CheckpointError
            As :meth:`prepare` and :meth:`check_resumable` would.
        """
        if self.path.exists() and not self.path.is_dir():
            raise OutputDirError(
                f"cannot write to --out {self.path} (it is a file, not a folder): choose a "
                "writable directory"
            )
        existing = self.existing()
        if existing and not (config.resume or config.overwrite):
            raise self._holds_a_run(existing)
        # An overwrite stopped early leaves the old run aside: prepare() puts it back first.
        if config.resume and not (self.path / replaced.REPLACED).exists():
            self.check_resumable(config)

    def _holds_a_run(self, existing: list[str]) -> OutputDirError:
        return OutputDirError(
            f"--out {self.path} already holds a run ({', '.join(existing)}): pass --resume "
            "to continue it, --overwrite to replace it, or choose another --out"
        )

    def check_model_files(self, name: str = BEST) -> None:
        """Refuse a folder that is no run, or lacks the model ``name``, before Keras is
        imported: the files :func:`textvae.training.sample.load_run` reads (``vocab.json``,
        ``config.json``, the model file) are there and the two JSON files parse.

        Raises
        ------
        CheckpointError
            A file missing or damaged, in :func:`~textvae.training.sample.load_run`'s words.
        """
        self.read_vocab()
        self.read_config()
        self._existing_file(name)

    def check_resumable(self, config: TrainConfig) -> int:
        """Epochs already done by this run, after checking that ``config`` can continue it.

        Parameters
        ----------
        config
            The configuration of the run that resumes: its ``vocab_size``, ``max_len``,
            ``targets``, model sizes, decoder and ``lr_schedule`` must be the checkpoint's; a
            run stopped mid-epoch also needs the same ``seed``, ``batch_size``, ``train_rows``
            and ``val_fraction`` (they decide which rows the remaining batches hold).

        Returns
        -------
        int
            ``epochs_done`` from ``state.json``: the epoch to resume in (0-based);
            :meth:`training_state` has the rest (the batch, the model file, ...).

        Raises
        ------
        CheckpointError
            No checkpoint (``state.json`` and the model file it names), a damaged
            ``state.json`` or ``config.json``, or a checkpoint of other sizes.
        """
        if not self.file(STATE).exists():
            raise CheckpointError(
                f"--resume: {self.path} has no checkpoint to resume ({STATE} and {LAST}); "
                "run without --resume to start a new run"
            )
        state = self.training_state()
        if not self.file(state.checkpoint).exists():
            raise CheckpointError(
                f"--resume: {self.path} has no checkpoint to resume ({STATE} names "
                f"{state.checkpoint}, which is missing); run without --resume to start a new "
                "run, or --overwrite"
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
                    f"this run asks {key}={ours['model'][key]}: use the checkpoint's settings or "
                    "another --out"
                )
        if state.batches_done:
            for key in _ORDER_FIELDS:
                if key in saved and saved[key] != ours[key]:
                    raise CheckpointError(
                        f"--resume: {self.path} stopped in the middle of epoch "
                        f"{state.epochs_done + 1} with {key}={saved[key]}, this run asks "
                        f"{key}={ours[key]}: the rest of that epoch needs the same {key}"
                    )
        return state.epochs_done

    # -- models -------------------------------------------------------------------------------
    def load_model(self, name: str = BEST) -> keras.Model:
        """Load the model ``name`` (``best.keras`` or ``last.keras``) of this run.

        Raises
        ------
        CheckpointError
            The file is missing, damaged, or not a :class:`~textvae.model.vae.TextVAE`.
        """
        import keras

        from textvae.model import TextVAE  # registers textvae's Keras classes for loading

        path = self._existing_file(name)
        try:
            model = keras.models.load_model(path)
        except Exception as err:  # a damaged or foreign file: many exception types
            if not path.exists():  # a mid-epoch checkpoint the training run replaced
                raise CheckpointError(
                    f"{path} was removed while it was read: {self._missing_hint(name)}; "
                    f"{BEST} and {LAST} are always there once written"
                ) from None
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
        _fsync(tmp)
        os.replace(tmp, path)
        return path

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, model: keras.Model, state: TrainingState) -> TrainingState:
        """Save ``model`` with ``state`` as the point ``--resume`` continues from.

        The model goes to ``checkpoint-<state.step>.keras`` (a temporary file, then a rename),
        then ``state.json`` is replaced to name it (the commit), then older checkpoint files
        are deleted. At an epoch's end (``state.batches_done == 0``) the file then becomes
        ``last.keras`` (a hard link, or a copy) and ``state.json`` names that instead. A kill
        at any point leaves ``state.json`` naming a complete model that matches it: the file
        ``state.json`` names is never the one being written.

        Returns
        -------
        TrainingState
            ``state`` with ``checkpoint`` set to the file it now names.
        """
        name = checkpoint_name(0 if state.step is None else state.step)
        current = self._committed_checkpoint()
        if name != current:  # the same step twice (a signal right after a save): keep it
            self.save_model(model, name)
        state = dataclasses.replace(state, checkpoint=name)
        self.write_state(state)
        replaced.settle(self.path, committed=True)  # an --overwrite's old run can go
        if state.batches_done == 0:
            state = self._publish_last(state)
        self.remove_stale(state.checkpoint)
        return state

    def _publish_last(self, state: TrainingState) -> TrainingState:
        """Make the committed epoch-end checkpoint ``last.keras`` and commit that name."""
        source, tmp = self.file(state.checkpoint), self.file(LAST + ".tmp.keras")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, tmp)
            _fsync(tmp)
        os.replace(tmp, self.file(LAST))
        state = dataclasses.replace(state, checkpoint=LAST)
        self.write_state(state)
        return state

    def _committed_checkpoint(self) -> str | None:
        try:
            return self.training_state().checkpoint
        except CheckpointError:
            return None

    def remove_stale(self, keep: str) -> None:
        """Delete what an interrupted save can leave: temporary files and every
        ``checkpoint-N.keras`` but ``keep`` (the one ``state.json`` names)."""
        for name in self._checkpoints():
            if name != keep:
                self.file(name).unlink(missing_ok=True)
        for path in self.path.iterdir():
            if _TEMPORARY.fullmatch(path.name) and any(
                path.name.startswith(base) for base in (*ARTEFACTS, "checkpoint-")
            ):
                path.unlink(missing_ok=True)

    def recover(self) -> TrainingState:
        """Bring the folder back to its last committed checkpoint before training resumes.

        Deletes temporary files and uncommitted checkpoints (:meth:`remove_stale`), drops
        ``history.csv`` rows of epochs ``state.json`` does not count as done (a kill between
        the row and the commit), and finishes an epoch-end save that was stopped before
        ``last.keras`` was replaced. Call it on the process that writes the folder.

        Returns
        -------
        TrainingState
            The committed state.
        """
        state = self.training_state()
        if state.batches_done == 0 and state.checkpoint != LAST:
            state = self._publish_last(state)
        self.remove_stale(state.checkpoint)
        self.trim_history(state.epochs_done)
        return state

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

    def write_state(self, state: TrainingState | int) -> None:
        """Write ``state.json`` (atomically): a :class:`TrainingState`, or ``epochs_done``
        alone (epochs finished and in ``last.keras``)."""
        if not isinstance(state, TrainingState):
            state = TrainingState(int(state))
        _write_atomic(self.file(STATE), json.dumps(_compact(state.to_dict())))

    def training_state(self) -> TrainingState:
        """The :class:`TrainingState` in ``state.json``.

        Raises
        ------
        CheckpointError
            The file is missing or damaged.
        """
        try:
            return TrainingState.from_dict(self._read_json(STATE))
        except (TypeError, ValueError) as err:
            raise self._damaged(
                STATE, f'{err}; expected {{"epochs_done": <integer >= 0>, ...}}'
            ) from None

    def read_state(self) -> int:
        """``epochs_done`` from ``state.json`` (:meth:`training_state` has the rest).

        Raises
        ------
        CheckpointError
            The file is missing or damaged.
        """
        return self.training_state().epochs_done

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Write ``metrics.json``."""
        _write_atomic(self.file(METRICS), json.dumps(dict(metrics), indent=2))

    # -- history.csv --------------------------------------------------------------------------
    def clear_history(self) -> None:
        """Delete ``history.csv`` (a new training session that does not continue one)."""
        self.file(HISTORY).unlink(missing_ok=True)

    def trim_history(self, epochs_done: int) -> None:
        """Keep only the rows of epochs ``< epochs_done`` in ``history.csv`` (atomically)."""
        path = self.file(HISTORY)
        text = history.trimmed(path.read_text(), epochs_done) if path.exists() else None
        if text is not None:
            _write_atomic(path, text)

    def best_epoch(self, monitor: str) -> int | None:
        """The epoch (1-based) whose ``best.keras`` this is: the first ``history.csv`` row with
        the lowest finite ``monitor``, the rule that saves it. ``None`` when no row has one."""
        path = self.file(HISTORY)
        return history.best_epoch(path.read_text(), monitor) if path.exists() else None

    def append_history(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Append epoch ``epoch``'s row (a header first if the file is new): ``epoch`` and the
        logs' keys in sorted order, as Keras' ``CSVLogger`` writes them."""
        history.append_row(self.file(HISTORY), epoch, logs)

    # -- helpers ------------------------------------------------------------------------------
    def _existing_file(self, name: str) -> Path:
        path = self.file(name)
        if not path.exists():
            raise CheckpointError(f"{path} does not exist: {self._missing_hint(name)}")
        return path

    def _missing_hint(self, name: str) -> str:
        """What to do about ``name`` missing: wait, when a run is writing the folder."""
        holder = self.lock_holder()
        if holder is None:
            return _POINT_AT_A_RUN
        when = "when its first epoch ends" if name in (BEST, LAST) else "when it saves"
        return (
            f"{self.path} is being written by a textvae-train that is running ({holder}); "
            f"the file appears {when}"
        )

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
