"""Training on several replicas with TensorFlow's own engine: a custom step, not ``model.fit``.

``model.fit`` under ``tf.distribute.MultiWorkerMirroredStrategy`` fails with Keras 3.15.1 /
TF 2.21 ("Attempt to convert a value (PerReplica ...) with an unsupported type ... to a
Tensor", for PyDataset and ``tf.data`` input alike; keras-team/keras#20585). This module trains
the same compiled :class:`~textvae.model.vae.TextVAE` with a step of its own::

    strategy.run(replica_step)             # one replica per device of every worker
      loss = model.compute_loss(x, y, model(x, training=True))   # compiled losses + add_loss KL
      grads = tape.gradient(loss)
      model.optimizer.apply(grads)          # Keras sums the gradients over all replicas
    strategy.reduce(SUM, loss)              # the global batch's mean loss

Input: every worker reads its own shard of every epoch from a :class:`OneHotSequence`
(``shard_index`` = the worker's position, ``num_shards`` = the number of workers; every shard
has the same length, so every worker takes the same number of steps). ``tf.data`` auto-sharding
is not involved: each worker's NumPy batch goes to its local replicas through
``strategy.experimental_distribute_values_from_function`` (split evenly when a worker has
several devices).

Loss scaling: Keras' ``compute_loss`` already divides each replica's loss by
``num_replicas_in_sync`` under a ``tf.distribute`` strategy (both the compiled losses and the
``add_loss`` KL term), and the optimizer sums the replicas' gradients, so with equal replica
batches the update is the gradient of the global batch's mean loss, as one process would take
it. Unequal replica batches (a worker's batch split unevenly over its devices) are weighted by
``rows / (global rows / replicas)`` so the sum stays the global mean. The KL term is a batch mean
per replica, so with ``free_bits > 0`` its floor applies to each replica's batch, not the
global one. Gradient clipping: Keras' optimizer clips each replica's gradient *before* summing
them (as ``fit`` under a strategy does too), which is not the single-process update; when the
optimizer clips and there is more than one replica, the step sums the gradients itself, clips
the sum as the optimizer would, and hands ``clipped / replicas`` to the optimizer (whose own
clipping then leaves it unchanged and whose sum restores ``clipped``): one more all-reduce per
step, for the single-process update exactly.

Call :func:`strategy_from_env` before any other TensorFlow work in the process: the
multi-worker strategy must configure TensorFlow's runtime before it starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from textvae._compat import deprecated
from textvae.batching.sequence import OneHotSequence
from textvae.config import LOG_SECONDS
from textvae.model import TextVAE
from textvae.training.callbacks import EpochSync, KLAnnealing, RunCheckpoint
from textvae.training.cluster import worker_info
from textvae.training.console import progress_bar
from textvae.training.run import RunDir

# `worker_info` lives in textvae.training.cluster (no TensorFlow); it stays importable from here.
__all__ = ["fit_distributed", "make_train_step", "strategy_from_env"]

#: The upstream issue that keeps ``model.fit`` from running under MultiWorkerMirroredStrategy.
FIT_ISSUE = "https://github.com/keras-team/keras/issues/20585"

Log = Callable[[str], None]


def strategy_from_env() -> tf.distribute.Strategy | None:
    """The strategy this process should train under, or ``None`` for plain ``model.fit``.

    - ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names more than one worker (one process
      per host; it starts this process's gRPC server on the address ``TF_CONFIG`` gives it);
    - ``MirroredStrategy`` when one process sees several GPUs;
    - ``None`` otherwise: one replica, where ``model.fit`` works and is what the caller keeps.

    Call it before any other TensorFlow work in the process.
    """
    _, num_workers, _ = worker_info()
    if num_workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def _position(strategy: tf.distribute.Strategy) -> tuple[int, int, bool]:
    """``(task_index, num_workers, is_chief)`` as ``strategy`` sees the cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1, True
    spec = resolver.cluster_spec().as_dict()
    return worker_info(
        {"cluster": spec, "task": {"type": resolver.task_type, "index": int(resolver.task_id)}}
    )


def _clip_like(optimizer: keras.optimizers.Optimizer, grads: list) -> list:
    """Clip ``grads`` as ``optimizer`` would (``clipnorm``, ``global_clipnorm``, ``clipvalue``)."""
    if optimizer.clipnorm and optimizer.clipnorm > 0:
        return [tf.clip_by_norm(g, optimizer.clipnorm) for g in grads]
    if optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        return list(tf.clip_by_global_norm(grads, optimizer.global_clipnorm)[0])
    if optimizer.clipvalue and optimizer.clipvalue > 0:
        v = optimizer.clipvalue
        return [tf.clip_by_value(g, -v, v) for g in grads]
    return grads


def _divide(grad, n: int):
    if isinstance(grad, tf.IndexedSlices):  # the embedding's gradient
        return tf.IndexedSlices(grad.values / n, grad.indices, grad.dense_shape)
    return grad / n


def _clips(optimizer: keras.optimizers.Optimizer) -> bool:
    return any(
        (value or 0) > 0
        for value in (optimizer.clipnorm, optimizer.global_clipnorm, optimizer.clipvalue)
    )


def make_train_step(
    model: TextVAE, strategy: tf.distribute.Strategy | None = None
) -> Callable[[Any, Any], float]:
    """A training step on ``strategy``'s replicas: ``step(x, y) -> loss`` of the global batch.

    ``x`` and ``y`` are this worker's batch as :class:`OneHotSequence` gives it (NumPy); the
    worker's local replicas each take an even share of it. Every worker must call the step
    the same number of times with batches of the same size (collective operations). The
    returned loss is the global batch's mean loss (compiled losses + the ``add_loss`` KL term,
    as ``fit`` reports it), the same number on every worker.

    ``model`` must be compiled and built inside ``strategy.scope()``. The optimizer is built
    here (in that scope) if it is not yet.
    """
    strategy = strategy or tf.distribute.get_strategy()
    optimizer = model.optimizer
    if optimizer is None:
        raise ValueError("`model` must be compiled (it has no optimizer): use build_vae()")
    if optimizer.loss_scale_factor is not None or optimizer.gradient_accumulation_steps:
        raise ValueError(
            "the distributed step does not support `loss_scale_factor` or "
            "`gradient_accumulation_steps`. Received: "
            f"loss_scale_factor={optimizer.loss_scale_factor}, "
            f"gradient_accumulation_steps={optimizer.gradient_accumulation_steps}"
        )
    replicas = strategy.num_replicas_in_sync
    task_index, num_workers, _ = _position(strategy)
    if replicas % num_workers:
        raise ValueError(
            f"{replicas} replicas cannot be spread evenly over {num_workers} workers: "
            "give every worker the same number of devices"
        )
    local_replicas = replicas // num_workers
    reduce_clipped = replicas > 1 and _clips(optimizer)
    if not optimizer.built:
        with strategy.scope():
            optimizer.build(model.trainable_variables)

    def replica_step(x, y, weight):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            # Already divided by num_replicas_in_sync by Keras under a strategy.
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True) * weight
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        if reduce_clipped:
            present = [i for i, g in enumerate(grads) if g is not None]
            ctx = tf.distribute.get_replica_context()
            summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            clipped = _clip_like(optimizer, summed)
            grads = list(grads)
            for i, g in zip(present, clipped, strict=True):
                grads[i] = _divide(g, replicas)  # the optimizer's own sum restores `g`
        optimizer.apply(grads, variables)
        model.compute_metrics(x, y, y_pred)
        return loss

    @tf.function(reduce_retracing=True)
    def distributed_step(x, y, weight):
        per_replica = strategy.run(replica_step, args=(x, y, weight))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    built = []

    def step(x, y) -> float:
        if not built:
            _build_metrics(model, strategy, x, y)
            built.append(True)
        rows = len(x)
        if rows < local_replicas:
            raise ValueError(
                f"a batch of {rows} rows cannot feed {local_replicas} local replicas: "
                "use a larger batch or drop_remainder=True"
            )
        bounds = np.linspace(0, rows, local_replicas + 1).round().astype(int)
        global_rows = rows * num_workers  # every worker's batch has the same size

        def value_fn(ctx: tf.distribute.ValueContext):
            local = ctx.replica_id_in_sync_group - task_index * local_replicas
            if not 0 <= local < local_replicas:
                raise RuntimeError(
                    f"replica {ctx.replica_id_in_sync_group} is not one of worker "
                    f"{task_index}'s {local_replicas} replicas"
                )
            part = slice(bounds[local], bounds[local + 1])
            share = (bounds[local + 1] - bounds[local]) * replicas / global_rows
            return (
                tf.nest.map_structure(lambda a: a[part], x),
                tf.nest.map_structure(lambda a: a[part], y),
                tf.constant(share, dtype="float32"),
            )

        dx, dy, dw = strategy.experimental_distribute_values_from_function(value_fn)
        return float(distributed_step(dx, dy, dw))

    return step


def _build_metrics(model: keras.Model, strategy: tf.distribute.Strategy, x, y) -> None:
    """Create the compiled losses' and metrics' variables before the step is traced.

    Keras builds them on their first use; inside the traced step that would create variables
    in a replica context (``fit`` builds them symbolically first). One eager pass on a single
    row builds them; the metrics are reset afterwards.
    """
    one = tf.nest.map_structure(lambda a: a[:1], (x, y))
    with strategy.scope():
        y_pred = model(one[0], training=False)
        model.compute_loss(x=one[0], y=one[1], y_pred=y_pred, training=False)
        model.compute_metrics(one[0], one[1], y_pred)
    model.reset_metrics()


def _check_same_steps(strategy: tf.distribute.Strategy, steps: int, replicas: int) -> None:
    """Raise on every worker unless every worker takes ``steps`` steps (else collectives hang)."""
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(float(steps))
    )
    total = float(strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))
    if total != steps * replicas:
        raise ValueError(
            f"workers disagree on the number of steps per epoch: this one takes {steps}, the "
            f"mean over replicas is {total / replicas:g}; give every worker the same sequence "
            "settings (batch_size, max_rows, drop_remainder) and num_shards = number of workers"
        )


def fit_distributed(
    strategy: tf.distribute.Strategy | None,
    build_model: Callable[[], TextVAE],
    make_sequence: Callable[[int, int], OneHotSequence],
    epochs: int,
    *,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    out: str | os.PathLike[str] | RunDir | None = None,
    log: Log | None = print,
    verbose: int = 1,
    log_seconds: float = LOG_SECONDS,
    kl_warmup_steps: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[TextVAE, dict[str, list[float]]]:
    """Train on every replica of ``strategy``, each worker on its own shard of every epoch.

    The loop drives a ``keras.callbacks.CallbackList`` as ``model.fit`` does
    (``on_train_begin``/``end``, ``on_epoch_begin``/``end`` with the epoch's logs,
    ``on_train_batch_begin``/``end``), so ``fit``'s callbacks work here unchanged; a callback
    that sets ``model.stop_training`` ends training after the epoch (it must do so on every
    worker: the logs are the same everywhere).

    Parameters
    ----------
    strategy
        From :func:`strategy_from_env`; ``None`` trains on TensorFlow's default (one-replica)
        strategy with the same step.
    build_model
        Returns the compiled model (e.g. ``build_vae(...)`` or a loaded checkpoint); called
        inside ``strategy.scope()``.
    make_sequence
        ``make_sequence(shard_index, num_shards)`` returns this worker's training sequence
        (``OneHotSequence(..., shard_index=shard_index, num_shards=num_shards)``); it is
        called once. An :class:`~textvae.training.callbacks.EpochSync` on it runs first: epoch
        e reads the sequence's epoch e.
    epochs, initial_epoch
        Train epochs ``initial_epoch .. epochs - 1``.
    callbacks
        Keras callbacks run on every worker, e.g. ``[KLAnnealing(steps)]``. Anything that
        writes files should run on the chief only: use ``out`` for the run folder.
    out
        The run folder: the chief writes ``best.keras``, ``last.keras``, ``history.csv`` and
        ``state.json`` there after every epoch through
        :class:`~textvae.training.callbacks.RunCheckpoint` (``history.csv`` continued when
        ``initial_epoch > 0``). ``None``: no files.
    log
        Receives one line per epoch on the chief (``None``: silent).
    verbose, log_seconds
        1 shows a ``keras.utils.Progbar`` per epoch on the chief when stdout is a terminal,
        else a plain line every ``log_seconds``; 0 and 2 none (``log`` has the epoch's line).
    kl_warmup_steps, checkpoint_dir, on_epoch_end
        Deprecated (one release): ``callbacks=[KLAnnealing(kl_warmup_steps)]``, ``out=`` and a
        callback's ``on_epoch_end``.

    Returns
    -------
    ``(model, history)``: ``history[key]`` lists one value per epoch trained here, for ``loss``
    (mean over the epoch's global batches, weighted by rows), the model's metrics
    (``reconstruction_loss``, ``sentiment_loss``, ``sentiment_accuracy``, ``kl``: over every
    worker's rows), ``kl_weight`` (at the epoch's end), ``steps`` and ``seconds``: the logs
    ``on_epoch_end`` receives.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    if not isinstance(initial_epoch, int) or not 0 <= initial_epoch <= epochs:
        raise ValueError(
            f"`initial_epoch` must be in [0, {epochs}]. Received: initial_epoch={initial_epoch!r}"
        )
    callbacks = list(callbacks or ())
    if kl_warmup_steps is not None:
        deprecated(
            "fit_distributed's `kl_warmup_steps`", "callbacks=[KLAnnealing(kl_warmup_steps)]"
        )
        callbacks.append(KLAnnealing(kl_warmup_steps))
    if on_epoch_end is not None:
        deprecated(
            "fit_distributed's `on_epoch_end`", "a callback's on_epoch_end (callbacks=[...])"
        )
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end))
    if checkpoint_dir is not None:
        if out is not None:
            raise ValueError("pass `out` only: `checkpoint_dir` is its deprecated name")
        deprecated("fit_distributed's `checkpoint_dir`", "out=")
        out = checkpoint_dir
    strategy = strategy or tf.distribute.get_strategy()
    task_index, num_workers, is_chief = _position(strategy)
    say = log if (log is not None and is_chief) else (lambda line: None)
    with strategy.scope():
        model = build_model()
    if not isinstance(model, keras.Model) or model.optimizer is None:
        raise ValueError(
            f"`build_model` must return a compiled Keras model. Received: {type(model).__name__}"
        )
    seq = make_sequence(task_index, num_workers)
    if (seq.shard_index, seq.num_shards) != (task_index, num_workers):
        raise ValueError(
            f"`make_sequence({task_index}, {num_workers})` returned shard "
            f"{seq.shard_index}/{seq.num_shards}: pass shard_index and num_shards through"
        )
    steps = len(seq)
    _check_same_steps(strategy, steps, strategy.num_replicas_in_sync)
    step = make_train_step(model, strategy)
    if out is not None and is_chief:
        out = out if isinstance(out, RunDir) else RunDir(out)
        out.path.mkdir(parents=True, exist_ok=True)
        callbacks.append(RunCheckpoint(out, append=initial_epoch > 0))
    hooks = keras.callbacks.CallbackList(
        [EpochSync(seq), *callbacks],
        model=model,
        epochs=epochs,
        steps=steps,
        verbose=verbose,
    )
    history: dict[str, list[float]] = {}
    say(
        f"distributed training: {num_workers} worker(s), {strategy.num_replicas_in_sync} "
        f"replica(s), {steps} steps/epoch of {seq.batch_size} rows per worker"
    )
    model.stop_training = False
    hooks.on_train_begin()
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        for epoch in range(initial_epoch, epochs):
            started = time.perf_counter()
            hooks.on_epoch_begin(epoch)
            model.reset_metrics()
            bar = (
                progress_bar(
                    steps,
                    label=f"epoch {epoch + 1}/{epochs}",
                    log_seconds=log_seconds,
                    log=say,
                    end_line=False,  # `say` prints the epoch's line
                )
                if (verbose == 1 and is_chief)
                else None
            )
            total, rows = 0.0, 0
            pending = prefetch.submit(seq.__getitem__, 0)
            for i in range(steps):
                x, y = pending.result()
                if i + 1 < steps:
                    pending = prefetch.submit(seq.__getitem__, i + 1)
                hooks.on_train_batch_begin(i)
                loss = step(x, y)
                total += loss * len(x)
                rows += len(x)
                hooks.on_train_batch_end(i, {"loss": loss})
                if bar is not None:
                    bar.update(i + 1, values=[("loss", loss)])
                del x, y  # hand the one-hot buffer back to the sequence's pool
            # Every worker reads the metrics (a collective for sync-on-read variables).
            metrics = {
                key: float(value)
                for key, value in model.get_metrics_result().items()
                if key != "loss"
            }
            logs = {
                "loss": total / rows,
                **metrics,
                "kl_weight": float(model.kl_weight.numpy()),
                "steps": float(steps),
                "seconds": time.perf_counter() - started,
            }
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            say(
                f"epoch {epoch + 1}/{epochs}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "steps")
            )
            hooks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    hooks.on_train_end()
    return model, history
