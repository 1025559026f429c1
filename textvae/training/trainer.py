"""``train(config)``: store -> OneHotSequence -> TextVAE.fit -> the run folder.

Users call it as ``textvae.training.train`` (the wing's face); the module is ``trainer`` so
that ``textvae.training.train`` names the function only, never a module too.

The run folder (``config.out``, ``--out``) and its files are :mod:`textvae.training.run`'s; the
callbacks that write them every epoch are :mod:`textvae.training.callbacks`' and serve both training
paths:

- one process: ``model.fit`` (any Keras backend; TensorFlow is not needed), with mid-epoch
  checkpoints (every ``checkpoint_steps`` / ``checkpoint_minutes`` and on SIGTERM/SIGINT) and a
  resume that continues at the next batch;
- several processes (``TF_CONFIG`` naming several workers) or several GPUs under the
  TensorFlow backend: :func:`textvae.training.distributed.fit_distributed`, imported only then; it
  checkpoints and resumes per epoch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import keras

from textvae.batching import (
    OneHotSequence,
)
from textvae.config import TrainConfig
from textvae.data import TokenStore, is_store, resolve_store
from textvae.errors import CheckpointError, OutputDirError
from textvae.model import TextVAE, build_vae
from textvae.progress import ProgressFn
from textvae.training.callbacks import (
    SELECTION,
    EpochSync,
    KLAnnealing,
    RunCheckpoint,
    restore_seed_states,
)
from textvae.training.cluster import worker_info
from textvae.training.console import fit_callbacks
from textvae.training.devices import DataParallelPlan, data_parallel
from textvae.training.evaluate import RECONSTRUCT_ROWS, evaluate_vae, split_sentiment_accuracy
from textvae.training.plots import plot_latents_if_possible
from textvae.training.preemption import StopOnSignal
from textvae.training.run import LAST, LATENTS, RunDir, TrainingState
from textvae.training.run_data import (
    _check_vae_store,
    _eval_sequence,
    _eval_split,
    _report_labels,
    _train_sequence,
    _TrainRows,
    _unigram_counts,
    _val_sequence,
)

__all__ = ["train"]

Log = Callable[[str], None]

#: metrics.json keys renamed in this release, old -> new: both are written for one more
#: release (README, "Deprecated names").
_OLD_METRIC_KEYS = {"train_rows_per_epoch": "train_rows", "workers": "processes"}


def _strategy(num_workers: int) -> Any:
    """The ``tf.distribute`` strategy to train under, or ``None`` for ``model.fit``.

    TensorFlow is imported only for a cluster, or to count GPUs under its own backend.
    """
    if num_workers == 1:
        if keras.backend.backend() != "tensorflow":
            return None
        import tensorflow as tf

        if len(tf.config.list_physical_devices("GPU")) < 2:
            return None
    from textvae.training.distributed import strategy_from_env

    return strategy_from_env()


def _kl_annealing(config: TrainConfig, steps_per_epoch: int) -> KLAnnealing:
    return KLAnnealing(round(config.kl_warmup_epochs * steps_per_epoch))


def _learning_rate(config: TrainConfig, steps_per_epoch: int) -> Any:
    """Adam's learning rate for ``config.model.lr_schedule``: ``learning_rate`` itself, or a
    linear decay from it to 0 at the run's last planned step (``epochs`` x ``steps_per_epoch``),
    read off the optimizer's ``iterations`` (saved in checkpoints: a resume continues it)."""
    m = config.model
    if m.lr_schedule == "constant":
        return m.learning_rate
    return keras.optimizers.schedules.PolynomialDecay(
        m.learning_rate,
        decay_steps=config.epochs * steps_per_epoch,
        end_learning_rate=0.0,
        power=1.0,
    )


def _continue_schedule(model: TextVAE, config: TrainConfig, steps_per_epoch: int, log: Log) -> None:
    """Give a resumed model's optimizer this run's learning-rate schedule where it differs
    from the checkpoint's (another ``--epochs``: the decay is stretched to end at this run's
    last step, from the step the checkpoint reached). A constant rate is left as saved, and
    ``check_resumable`` refused a checkpoint of the other ``lr_schedule``."""
    wanted = _learning_rate(config, steps_per_epoch)
    if not isinstance(wanted, keras.optimizers.schedules.LearningRateSchedule):
        return
    saved = model.optimizer.get_config()["learning_rate"]
    if isinstance(saved, dict) and saved.get("config") == wanted.get_config():
        return
    model.optimizer.learning_rate = wanted
    log(
        f"learning rate: linear from {config.model.learning_rate:g} to 0 over "
        f"{wanted.decay_steps} steps, this run's ({config.epochs} epochs of "
        f"{steps_per_epoch}), in place of the checkpoint's schedule"
    )


def _best_epoch(run: RunDir) -> int | None:
    """The epoch of the run's ``best.keras`` (1-based), by the log ``state.json`` says chose
    it; ``None`` when that is not known."""
    monitor = run.training_state().monitor
    return run.best_epoch(monitor) if monitor else None


def _step_options(model: TextVAE, config: TrainConfig) -> None:
    """How Keras runs ``model``'s steps: eagerly, or traced and, unless ``jit_compile`` is
    ``"auto"`` (Keras' choice), compiled with XLA or not. Set before the first ``fit`` /
    ``evaluate``, which build the step functions from these attributes."""
    model.run_eagerly = config.run_eagerly
    if config.run_eagerly:
        model.jit_compile = False  # as Keras' compile(run_eagerly=True) does
    elif config.jit_compile != "auto":
        model.jit_compile = config.jit_compile == "on"


def _new_model(config: TrainConfig, store: TokenStore, steps_per_epoch: int) -> TextVAE:
    m = config.model
    return build_vae(
        store.vocab_size,
        store.max_len,
        learning_rate=_learning_rate(config, steps_per_epoch),
        embedding_dim=m.embedding_dim,
        hidden=m.hidden,
        dense=m.dense,
        latent=m.latent,
        epsilon_std=m.epsilon_std,
        decoder=m.decoder,
        decoder_cell=m.decoder_cell,
        word_dropout=m.word_dropout,
        encoder_pooling=m.encoder_pooling,
        encoder_layers=m.encoder_layers,
        sentiment_weight=m.sentiment_weight,
        free_bits=m.free_bits,
        bow_weight=m.bow_weight,
        targets=config.targets,
        truncating=store.truncating,
        target_window=m.target_window,
        bigram_buckets=m.bigram_buckets,
        encoder_dropout=m.encoder_dropout,
        decoder_position=m.decoder_position,
        seed=config.seed,
    )


def _fit_multi_worker(
    config: TrainConfig,
    strategy: Any,
    store: TokenStore,
    rows: _TrainRows,
    run: RunDir,
    state: TrainingState | None,
    log: Log,
) -> None:
    """Train under ``strategy`` with the custom step; the chief writes ``run``'s files.

    Checkpoints and resumes per epoch only: a state saved mid-epoch by a single-process run
    resumes at that epoch's start, from ``last.keras`` (the partial epoch is trained again).
    """
    from textvae.training.distributed import fit_distributed

    task_index, num_workers, _ = worker_info()
    initial_epoch = state.epochs_done if state is not None else 0
    if config.checkpoint_steps or config.checkpoint_minutes:
        log("multi-worker training checkpoints at every epoch's end only (not mid-epoch)")
    if state is not None and state.batches_done:
        log(
            f"multi-worker training resumes at epoch boundaries: the {state.batches_done} "
            f"batches of epoch {initial_epoch + 1} done before the stop are trained again"
        )

    # This worker's shard, built once: its length sets the KL warm-up and the learning-rate
    # schedule, and fit_distributed asks for the same shard (the strategy reads the same
    # TF_CONFIG).
    seq = _train_sequence(config, store, rows, task_index, num_workers)

    def build_model() -> TextVAE:
        if state is None or (state.batches_done and initial_epoch == 0):
            return _new_model(config, store, len(seq))
        model = run.load_model(LAST if state.batches_done else state.checkpoint)
        _continue_schedule(model, config, len(seq), log)
        return model

    def make_sequence(index: int, count: int) -> OneHotSequence:
        if (index, count) == (task_index, num_workers):
            return seq
        return _train_sequence(config, store, rows, index, count)

    steps = len(seq)
    fit_distributed(
        strategy,
        build_model,
        make_sequence,
        config.epochs,
        initial_epoch=initial_epoch,
        callbacks=[_kl_annealing(config, steps)],
        out=run,
        log=log,
        verbose=config.verbose,
        log_seconds=config.log_seconds,
    )


def _fit_one_process(
    config: TrainConfig,
    store: TokenStore,
    rows: _TrainRows,
    run: RunDir,
    state: TrainingState | None,
    log: Log,
    stop: StopOnSignal | None = None,
    plan: DataParallelPlan | None = None,
) -> TextVAE:
    """``model.fit`` from scratch, or from ``state``: a state saved mid-epoch first finishes
    its epoch on ``train_seq.from_batch(batches_done)`` (the batches an uninterrupted run
    would read next, in order), then trains the other epochs on the whole sequence. Under
    ``plan`` (Keras' ``DataParallel``, already set) each batch is split among the devices."""
    train_seq = _train_sequence(config, store, rows, plan=plan)
    val_seq = _val_sequence(config, store, rows, plan)
    steps = len(train_seq)
    initial_epoch, first_batch = (state.epochs_done, state.batches_done) if state else (0, 0)
    if first_batch and state.steps_per_epoch not in (None, steps):
        raise CheckpointError(
            f"--resume: {run.path} stopped at batch {first_batch} of {state.steps_per_epoch} "
            f"in epoch {initial_epoch + 1}, this run has {steps} batches per epoch: resume "
            "with the same data and sizes"
        )
    if state is not None:
        model = run.load_model(state.checkpoint)
        _continue_schedule(model, config, steps, log)
        if state.seed_states:
            try:
                restore_seed_states(model, state.seed_states)
            except ValueError as err:
                raise CheckpointError(f"--resume: {run.path}/{state.checkpoint}: {err}") from None
    else:
        model = _new_model(config, store, steps)
        model.init_output_bias(_unigram_counts(store, rows.kept, model.target_window))
    _step_options(model, config)
    # best.keras is chosen on the held-out part of the train split, never on the test split:
    # its loss and sentiment accuracy together (selection_score), else the training loss.
    monitor = "loss" if val_seq is None else SELECTION
    checkpoint = RunCheckpoint(
        run,
        monitor=monitor,
        append=state is not None,
        every_steps=config.checkpoint_steps or None,
        every_seconds=config.checkpoint_minutes * 60 or None,
        resume=state,
        stop=stop,
    )
    held = f", {val_seq.rows_per_shard:,} held out for validation {rows.how}" if val_seq else ""
    at = f" (epoch {initial_epoch + 1} from batch {first_batch + 1})" if first_batch else ""
    log(
        f"training: {train_seq.rows_per_shard:,} reviews/epoch{held}, {steps} steps "
        f"of {config.batch_size}{_on_devices(plan)}, "
        f"epochs {initial_epoch + 1}-{config.epochs}{at}, "
        f"decoder={config.model.decoder} ({config.model.decoder_cell}), "
        f"targets={config.targets}, lr_schedule={config.model.lr_schedule}"
    )
    # (sequence, last epoch + 1): the rest of a stopped epoch first, then whole epochs.
    parts = [(train_seq.from_batch(first_batch), initial_epoch + 1)] if first_batch else []
    parts.append((train_seq, config.epochs))
    kl = _kl_annealing(config, steps)
    verbose, shown = fit_callbacks(config.verbose, config.log_seconds, log)
    epoch = initial_epoch
    for seq, until in parts:
        if epoch >= until:
            continue
        # Keras reads two batches for their shapes before EpochSync runs: let them be this
        # epoch's, not epoch 0's (same rows, warm chunk cache).
        seq.set_epoch(epoch)
        model.fit(
            seq,
            validation_data=val_seq,
            epochs=until,
            initial_epoch=epoch,
            callbacks=[EpochSync(seq), kl, *_run_callbacks(checkpoint, plan), *shown],
            verbose=verbose,
            shuffle=False,  # the Sequence shuffles, chunk-aware and keyed on (seed, epoch)
        )
        epoch = until
    return model


def _run_callbacks(checkpoint: RunCheckpoint, plan: DataParallelPlan | None) -> list[Any]:
    """The callbacks that write the run folder: of several processes, the chief's alone."""
    if plan is None:
        return [checkpoint]
    return [plan.chief_callback(checkpoint)] if plan.is_chief else []


def _on_devices(plan: DataParallelPlan | None) -> str:
    if plan is None:
        return ""
    processes = f" in {plan.process_count} processes" if plan.process_count > 1 else ""
    return f" split among {plan.devices} devices{processes}"


def train(
    config: TrainConfig, log: Log = print, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Train the text VAE as ``config`` says and evaluate it; write the run folder ``config.out``.

    With ``TF_CONFIG`` naming several workers (or on one host with several GPUs under the
    TensorFlow backend) training runs under a ``tf.distribute`` strategy with
    :func:`textvae.training.distributed.fit_distributed`, each worker on its own shard; the chief
    writes the run folder and evaluates. Otherwise ``model.fit``, on any Keras backend.

    Parameters
    ----------
    config
        The run: data, sizes, schedule, ``out``, ``resume`` / ``overwrite``.
    log
        Called with one line per step of the run (ingest, training, evaluation).
    progress
        Ingest progress, passed to :func:`textvae.data.resolve.resolve_store`.

    Returns
    -------
    dict
        The metrics also written to ``metrics.json`` (:func:`textvae.training.evaluate.evaluate_vae`
        plus ``split``, ``epochs``, ``processes``, ``train_rows``, ``fit_seconds``,
        ``total_seconds``), or ``{}`` on a worker of a multi-worker run that is not the chief.

    Raises
    ------
    TextVAEError
        A user error: unreadable data, an ``out`` that holds another run or cannot be written,
        a checkpoint that does not match ``config``, ...
    TrainingInterrupted
        SIGTERM or SIGINT during one-process training: the state was saved first
        (``config.resume`` continues at the next batch).
    RunLockedError
        Another process holds the run folder's lock (:class:`~textvae.training.run.RunLock`):
        the chief takes it for the whole run, before it prepares the folder; the other workers
        of a multi-worker run only read the folder and take none.
    """
    run = RunDir(config.out)
    # Before any model or JAX computation: a multi-process run starts jax.distributed here.
    with data_parallel(config.devices, config.batch_size) as plan:
        chief = worker_info()[2] if plan is None else plan.is_chief
        with run.lock(log=log) if chief else contextlib.nullcontext():
            return _train(config, run, log, progress, plan)


def _train(
    config: TrainConfig,
    run: RunDir,
    log: Log,
    progress: ProgressFn | None,
    plan: DataParallelPlan | None,
) -> dict[str, Any]:
    """:func:`train`, run while the chief holds the run folder's lock."""
    started = time.perf_counter()
    if plan is None:
        _, num_workers, is_chief = worker_info()
        strategy = _strategy(num_workers)  # before any other TensorFlow work
    else:
        num_workers, is_chief, strategy = plan.process_count, plan.is_chief, None
    if num_workers > 1 and not (config.data and is_store(config.data)):
        raise OutputDirError(
            "multi-worker training reads an existing store: build it once with `textvae-ingest` "
            "and pass it as --data"
        )
    if is_chief:
        run.prepare(resume=config.resume, overwrite=config.overwrite)
    state: TrainingState | None = None
    if config.resume:
        run.check_resumable(config)
        state = run.recover() if is_chief else run.training_state()
    initial_epoch = state.epochs_done if state is not None else 0
    store = resolve_store(
        config.data,
        vocab_size=config.vocab_size,
        max_len=config.max_len,
        store_path=config.store,
        storage_options=config.storage_options,
        log=log,
        progress=progress,
    )
    if hasattr(progress, "close"):
        progress.close()
    _check_vae_store(store, config.model.target_window)
    # A resumed run keeps the hold-out it started with: a store cached before groups existed
    # and rebuilt with them since would otherwise move reviews between training and validation.
    grouped = not config.resume or "group_by" in run.store_attrs()
    rows = _TrainRows.of(config, store, grouped=grouped)
    _report_labels(store, rows, log)
    keras.utils.set_random_seed(config.seed)
    if is_chief and not config.resume:
        run.write_config(config, store.attrs)
        run.write_vocab(store.token_strings)
    if state is not None:
        at = f" at its batch {state.batches_done + 1}" if state.batches_done else ""
        log(f"resuming {run.path} in epoch {initial_epoch + 1} of {config.epochs}{at}")

    fit_started = time.perf_counter()
    if initial_epoch >= config.epochs:
        if not is_chief:  # the chief alone evaluates and writes the results
            return {}
        log(f"{run.path} already finished {initial_epoch} epochs: evaluating only")
        model = run.load_model(LAST)
    elif strategy is None:
        with StopOnSignal() as stop:
            model = _fit_one_process(config, store, rows, run, state, log, stop, plan)
        if plan is not None:
            # Evaluation takes every row (a last partial batch too): on one device, outside
            # the distribution, from the checkpoint of the last epoch.
            keras.distribution.set_distribution(None)
            if not is_chief:
                return {}
            model = run.load_model(LAST)
    else:
        _fit_multi_worker(config, strategy, store, rows, run, state, log)
        if not is_chief:
            return {}
        model = run.load_model(LAST)  # evaluate outside the strategy
    fit_seconds = time.perf_counter() - fit_started

    split = _eval_split(store)
    eval_seq = _eval_sequence(config, store, split)
    _step_options(model, config)
    log(f"evaluating on {eval_seq.rows_per_shard:,} {split} reviews")
    metrics, z_means, labels = evaluate_vae(
        model,
        eval_seq,
        reconstruct_rows=min(RECONSTRUCT_ROWS, eval_seq.rows_per_shard),
        verbose=config.verbose,
        log_seconds=config.log_seconds,
        log=log,
    )
    if eval_seq.rows_per_shard < store.num_rows(split):
        # The encoder alone is cheap: sentiment over the whole split, beside the subset's.
        log(f"sentiment accuracy on all {store.num_rows(split):,} {split} reviews")
        metrics.update(
            split_sentiment_accuracy(
                model,
                store,
                split,
                verbose=config.verbose,
                log_seconds=config.log_seconds,
                log=log,
            )
        )
    best_epoch = _best_epoch(run)
    if best_epoch is not None and best_epoch != config.epochs:
        log(
            f"best.keras is epoch {best_epoch}'s model, which textvae-sample uses by default; "
            f"these metrics are of last.keras (epoch {config.epochs})"
        )
    metrics.update(
        evaluated=LAST,
        best_epoch=best_epoch,
        split=split,
        epochs=config.epochs,
        processes=num_workers,
        train_rows=rows.per_epoch(num_workers),
        val_rows=len(rows.held_out),
        fit_seconds=round(fit_seconds, 1),
        total_seconds=round(time.perf_counter() - started, 1),
    )
    metrics.update({old: metrics[new] for old, new in _OLD_METRIC_KEYS.items()})
    run.write_metrics(metrics)
    plot_latents_if_possible(
        z_means,
        labels,
        run.file(LATENTS),
        log,
        run=str(run.path),
        split=split,
        accuracy=metrics.get("sentiment_accuracy"),
    )
    return metrics
