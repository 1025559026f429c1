"""``train(config)``: store -> OneHotSequence -> TextVAE.fit -> checkpoints, history, metrics.

Artefacts in ``config.out``:

=================  ============================================================================
``config.json``    the run's configuration (checked again on ``--resume``)
``vocab.json``     the store's vocabulary, id -> token (for ``textvae-sample``)
``best.keras``     the model with the lowest training loss so far (checked each epoch)
``last.keras``     the model after the last finished epoch, with its optimizer state
``state.json``     ``{"epochs_done": k}``, written after ``last.keras``
``history.csv``    Keras' CSVLogger: loss, reconstruction/sentiment losses, accuracy, kl
``metrics.json``   test metrics (see :func:`textvae.evaluate.evaluate_vae`) and timings
``latents.png``    test latent means projected to 2-D with PCA, coloured by sentiment
=================  ============================================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from textvae.config import TrainConfig
from textvae.corpus import download_keras_imdb, find_imdb, open_corpus
from textvae.distributed import fit_distributed, strategy_from_env, worker_info
from textvae.errors import CheckpointError, IncompleteStoreError, OutputDirError
from textvae.evaluate import evaluate_vae, plot_latents
from textvae.model import KLAnnealing, TextVAE, build_vae
from textvae.sequence import OneHotSequence
from textvae.store import TokenStore, build_store

__all__ = ["ARTEFACTS", "default_store_path", "resolve_store", "train"]

ARTEFACTS = (
    "config.json",
    "vocab.json",
    "best.keras",
    "last.keras",
    "state.json",
    "history.csv",
    "metrics.json",
    "latents.png",
)
#: Model fields that must match between a checkpoint and the configuration resuming it.
_SHAPE_FIELDS = ("embedding_dim", "hidden", "dense", "latent")

Log = Callable[[str], None]


def _cache_dir() -> Path:
    return Path(os.environ.get("TEXTVAE_CACHE", Path.home() / ".cache" / "textvae"))


def default_store_path(source: str | os.PathLike[str], vocab_size: int, max_len: int) -> Path:
    """Where ``textvae-train`` keeps the store it ingests from ``source`` (reused next time)."""
    resolved = str(Path(source).resolve())
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:8]
    name = Path(resolved).name.split(".")[0] or "corpus"
    return _cache_dir() / "stores" / f"{name}-{digest}-v{vocab_size}-l{max_len}.zarr"


def _is_store(path: str) -> bool:
    if "://" in path:
        return True  # remote data is always a store: corpora are read from local files
    return (Path(path) / "zarr.json").is_file()


def resolve_store(config: TrainConfig, log: Log = print, progress=None) -> TokenStore:
    """Open the store ``config.data`` names, or ingest its corpus (once) and open that.

    With ``config.data`` unset, IMDB is found locally (:func:`textvae.corpus.find_imdb`) or
    downloaded through ``keras.datasets`` (which fails with a clear message offline).
    """
    expected = {"vocab_size": config.vocab_size, "max_len": config.max_len}
    source = config.data
    if source is not None and _is_store(source):
        return TokenStore.open(source, **expected)
    if source is None:
        found = find_imdb()
        if found is None:
            log("IMDB not found locally: downloading it through keras.datasets")
            found = download_keras_imdb()
        source = str(found)
    store_path = (
        Path(config.store)
        if config.store
        else default_store_path(source, config.vocab_size, config.max_len)
    )
    if store_path.exists():
        try:
            store = TokenStore.open(store_path, **expected)
        except IncompleteStoreError:
            log(f"{store_path} is an interrupted build: building it again")
        else:
            log(f"using the store {store_path} (built from {store.attrs.get('source')})")
            return store
    log(f"ingesting {source} into {store_path} (once; later runs reuse it)")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    return build_store(
        store_path,
        open_corpus(source),
        overwrite=store_path.exists(),
        progress=progress,
        **expected,
    )


def _prepare_out(config: TrainConfig) -> Path:
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".textvae-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise OutputDirError(
            f"cannot write to --out {out} ({err.strerror or err}): choose a writable directory"
        ) from None
    existing = [name for name in ARTEFACTS if (out / name).exists()]
    if existing and not (config.resume or config.overwrite):
        raise OutputDirError(
            f"--out {out} already holds a run ({', '.join(existing)}): pass --resume to continue "
            "it, --overwrite to replace it, or choose another --out"
        )
    if config.overwrite:
        for name in existing:
            (out / name).unlink()
    return out


def _check_resumable(config: TrainConfig, out: Path) -> int:
    """Epochs already done by the run in ``out``; refuse a checkpoint of another shape."""
    state_file, last = out / "state.json", out / "last.keras"
    if not (state_file.exists() and last.exists()):
        raise CheckpointError(
            f"--resume: {out} has no checkpoint to resume (state.json and last.keras); "
            "run without --resume to start a new run"
        )
    saved = json.loads((out / "config.json").read_text())
    ours = config.to_dict()
    for key in ("vocab_size", "max_len", "targets"):  # the checkpoint is compiled for its targets
        if saved.get(key) != ours[key]:
            raise CheckpointError(
                f"--resume: the checkpoint in {out} has {key}={saved.get(key)}, this run asks "
                f"{key}={ours[key]}: use the checkpoint's value or another --out"
            )
    for key in _SHAPE_FIELDS:
        if saved.get("model", {}).get(key) != ours["model"][key]:
            raise CheckpointError(
                f"--resume: the checkpoint in {out} has {key}={saved['model'].get(key)}, this "
                f"run asks {key}={ours['model'][key]}: use the checkpoint's sizes or another --out"
            )
    return int(json.loads(state_file.read_text())["epochs_done"])


def _load_checkpoint(path: Path) -> TextVAE:
    try:
        model = keras.models.load_model(path)
    except Exception as err:  # a damaged or foreign file: many exception types
        raise CheckpointError(
            f"cannot load the checkpoint {path} ({type(err).__name__}: {err}): "
            "run without --resume to start over"
        ) from None
    if not isinstance(model, TextVAE):
        raise CheckpointError(f"{path} is not a textvae model: run without --resume")
    return model


class _SequenceEpoch(keras.callbacks.Callback):
    """Serve epoch k's order in fit's epoch k, however often Keras calls ``on_epoch_end``
    (it also does once after peeking at batches before training), so a resumed run reads the
    same batches as an uninterrupted one."""

    def __init__(self, sequence: OneHotSequence) -> None:
        super().__init__()
        self.sequence = sequence

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sequence.set_epoch(epoch)


class _StateWriter(keras.callbacks.Callback):
    """Record finished epochs after ``last.keras`` is written (the callback after it)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epochs_done": epoch + 1}))
        os.replace(tmp, self.path)


def _eval_split(store: TokenStore) -> str:
    others = [s for s in store.splits if s != "train"]
    return "test" if "test" in others else (others[-1] if others else "train")


def _train_sequence(
    config: TrainConfig, store: TokenStore, shard_index: int = 0, num_shards: int = 1
) -> OneHotSequence:
    return OneHotSequence(
        store,
        "train",
        config.batch_size,
        targets=config.targets,
        dtype=config.dtype,
        shuffle=True,
        seed=config.seed,
        max_rows=config.train_rows,
        shard_index=shard_index,
        num_shards=num_shards,
        workers=config.workers,
        max_queue_size=config.max_queue_size,
    )


def _new_model(config: TrainConfig, store: TokenStore) -> TextVAE:
    m = config.model
    return build_vae(
        store.vocab_size,
        store.max_len,
        learning_rate=m.learning_rate,
        embedding_dim=m.embedding_dim,
        hidden=m.hidden,
        dense=m.dense,
        latent=m.latent,
        epsilon_std=m.epsilon_std,
        sentiment_weight=m.sentiment_weight,
        free_bits=m.free_bits,
        targets=config.targets,
        seed=config.seed,
    )


class _ChiefEpochEnd:
    """What the fit callbacks do, for the multi-worker loop: best.keras when the loss
    improved, state.json after last.keras, a history.csv row (on the chief only)."""

    def __init__(self, out: Path, model_ref: list, append: bool) -> None:
        self.out, self.model_ref = out, model_ref
        self.best = float("inf")
        self.history = out / "history.csv"
        if not append:
            self.history.unlink(missing_ok=True)

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        model = self.model_ref[0]
        if logs["loss"] < self.best:
            self.best = logs["loss"]
            model.save(self.out / "best.keras")
        _StateWriter(self.out / "state.json").on_epoch_end(epoch)
        keys = ["epoch", *sorted(logs)]
        new = not self.history.exists()
        with self.history.open("a") as f:
            if new:
                f.write(",".join(keys) + "\n")
            f.write(",".join([str(epoch), *(repr(logs[k]) for k in keys[1:])]) + "\n")


def _fit_multi_worker(config, strategy, store, out, initial_epoch, log) -> tuple[TextVAE, bool]:
    """Train under ``strategy`` with the custom step; returns (model, is_chief)."""
    _, num_workers, is_chief = worker_info()
    model_ref: list = []

    def build_model() -> TextVAE:
        model = _load_checkpoint(out / "last.keras") if config.resume else _new_model(config, store)
        model_ref.append(model)
        return model

    steps = len(_train_sequence(config, store, 0, num_workers))
    model, _ = fit_distributed(
        strategy,
        build_model,
        lambda index, count: _train_sequence(config, store, index, count),
        config.epochs,
        initial_epoch=initial_epoch,
        kl_warmup_steps=round(config.kl_warmup_epochs * steps),
        checkpoint_dir=out if is_chief else None,
        log=log,
        on_epoch_end=_ChiefEpochEnd(out, model_ref, config.resume) if is_chief else None,
        verbose=config.verbose,
    )
    return model, is_chief


def _fit_one_process(config, store, out, initial_epoch, log) -> TextVAE:
    train_seq = _train_sequence(config, store)
    if config.resume:
        model = _load_checkpoint(out / "last.keras")
    else:
        model = _new_model(config, store)
    callbacks = [
        _SequenceEpoch(train_seq),
        KLAnnealing(round(config.kl_warmup_epochs * len(train_seq))),
        keras.callbacks.ModelCheckpoint(out / "best.keras", monitor="loss", save_best_only=True),
        keras.callbacks.ModelCheckpoint(out / "last.keras"),
        _StateWriter(out / "state.json"),
        keras.callbacks.CSVLogger(out / "history.csv", append=config.resume),
    ]
    log(
        f"training: {train_seq.rows_per_shard:,} reviews/epoch, {len(train_seq)} steps of "
        f"{config.batch_size}, epochs {initial_epoch + 1}-{config.epochs}, "
        f"targets={config.targets}"
    )
    model.fit(
        train_seq,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,  # the Sequence shuffles, chunk-aware and keyed on (seed, epoch)
    )
    return model


def train(config: TrainConfig, log: Log = print, progress=None) -> dict[str, Any]:
    """Train the text VAE as ``config`` says; return the test metrics (also in metrics.json),
    or ``{}`` on a worker of a multi-worker run that is not the chief.

    With ``TF_CONFIG`` naming several workers (or on one host with several GPUs) training runs
    under a ``tf.distribute`` strategy with :func:`textvae.distributed.fit_distributed`, each
    worker on its own shard; the chief writes the artefacts and evaluates. Otherwise
    ``model.fit``.
    """
    started = time.perf_counter()
    strategy = strategy_from_env()  # before any other TensorFlow work
    _, num_workers, is_chief = worker_info()
    if strategy is not None and num_workers > 1 and not (config.data and _is_store(config.data)):
        raise OutputDirError(
            "multi-worker training reads an existing store: build it once with `textvae-ingest` "
            "and pass it as --data"
        )
    out = _prepare_out(config) if is_chief else Path(config.out)
    initial_epoch = _check_resumable(config, out) if config.resume else 0
    store = resolve_store(config, log=log, progress=progress)
    if hasattr(progress, "close"):
        progress.close()
    keras.utils.set_random_seed(config.seed)
    if is_chief and not config.resume:
        saved = {**config.to_dict(), "store_attrs": store.attrs}
        (out / "config.json").write_text(json.dumps(saved, indent=2))
        (out / "vocab.json").write_text(json.dumps(list(store.vocab)))
    if config.resume:
        log(f"resuming {out} at epoch {initial_epoch + 1} of {config.epochs}")

    fit_started = time.perf_counter()
    if initial_epoch >= config.epochs:
        log(f"{out} already finished {initial_epoch} epochs: evaluating only")
        model = _load_checkpoint(out / "last.keras")
    elif strategy is None:
        model = _fit_one_process(config, store, out, initial_epoch, log)
    else:
        model, _ = _fit_multi_worker(config, strategy, store, out, initial_epoch, log)
        if not is_chief:
            return {}
        model = _load_checkpoint(out / "last.keras")  # evaluate outside the strategy
    fit_seconds = time.perf_counter() - fit_started

    split = _eval_split(store)
    eval_seq = OneHotSequence(
        store,
        split,
        max(config.batch_size, 64),
        targets="sparse",
        shuffle=config.eval_rows is not None,
        seed=config.seed,
        max_rows=config.eval_rows,
        drop_remainder=False,
    )
    log(f"evaluating on {eval_seq.rows_per_shard:,} {split} reviews")
    metrics, z_means, labels = evaluate_vae(model, eval_seq)
    metrics.update(
        split=split,
        epochs=config.epochs,
        workers=num_workers,
        train_rows_per_epoch=_train_sequence(config, store, 0, num_workers).rows_per_shard
        * num_workers,
        fit_seconds=round(fit_seconds, 1),
        total_seconds=round(time.perf_counter() - started, 1),
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_latents(z_means, labels, out / "latents.png")
    return metrics
