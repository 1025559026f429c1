"""Worker processes for tests/training/test_distributed.py (not a test module itself).

``python distributed_worker.py launch MODE STORE OUTDIR EPOCHS BATCH TIMEOUT [--lo-up]``
    Start two ``worker`` processes on free 127.0.0.1 ports with ``TF_CONFIG`` set for each,
    wait for both (at most TIMEOUT seconds, then kill them) and exit 0 only if both exited 0.
    ``--lo-up`` first brings up the loopback interface (a fresh network namespace has it
    down): the test runs this command under ``unshare --net``, because TensorFlow's gRPC server
    listens on every interface (``[::]:port``) whatever address ``TF_CONFIG`` gives it.
``python distributed_worker.py worker MODE STORE OUT.npz EPOCHS BATCH``
    One worker. MODE ``cli``: ``textvae-train`` itself (writes OUTDIR/run on the chief). MODE
    ``train``: :func:`textvae.training.distributed.fit_distributed` on this worker's
    shard; OUT.npz gets the rows it read per epoch, its steps, history, timings and final
    weights. MODE ``fit``: plain ``model.fit`` under MultiWorkerMirroredStrategy (fails with
    Keras 3.15.1, keras-team/keras#20585); OUT.npz gets the final weights.
``python distributed_worker.py mirrored STORE OUT.npz``
    One process, two logical CPU devices: three steps of the custom step under a two-replica
    ``MirroredStrategy`` and the same three global batches under the default strategy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = {"embedding_dim": 8, "hidden": 8, "dense": 8, "latent": 4, "sentiment_weight": 2.0}
VOCAB, MAX_LEN = 30, 12


def _loopback_up() -> None:
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0))
        flags = struct.unpack("16sH", ifr[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, store: str, outdir: str, epochs: str, batch: str, timeout: float) -> int:
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs: list[subprocess.Popen] = []
    deadline = time.monotonic() + timeout
    try:
        for index in range(2):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
            out = os.path.join(outdir, f"worker{index}.npz")
            with open(os.path.join(outdir, f"worker{index}.log"), "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "worker", mode, store, out, epochs, batch],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired:
        print(f"timed out after {timeout:.0f} s", file=sys.stderr)
        return 124
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(json.dumps({"codes": codes}))
    return 0 if codes == [0, 0] else 1


def worker(mode: str, store: str, out: str, epochs: int, batch_size: int) -> int:
    started = time.perf_counter()
    if mode == "cli":  # the real command: `textvae-train` with TF_CONFIG set
        from textvae.cli import train_main

        sizes = [f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]
        return train_main(
            [
                "--data",
                store,
                "--out",
                os.path.join(os.path.dirname(out), "run"),
                f"--vocab={VOCAB}",
                f"--max-len={MAX_LEN}",
                f"--epochs={epochs}",
                f"--batch-size={batch_size}",
                "--verbose=0",
                "--kl-warmup-epochs=0.5",
                *sizes,
            ]
        )
    from textvae.training.cluster import worker_info
    from textvae.training.distributed import fit_distributed, strategy_from_env

    strategy = strategy_from_env()  # before any other TensorFlow work
    import keras
    import numpy as np

    from textvae.batching import OneHotSequence, ShardOptions
    from textvae.model.vae import build_vae

    task_index, num_workers, is_chief = worker_info()
    keras.utils.set_random_seed(0)

    def build_model():
        return build_vae(VOCAB, MAX_LEN, seed=0, **SIZES)

    if mode == "fit":
        seq = OneHotSequence(
            store, "train", batch_size, seed=0, shards=ShardOptions(task_index, num_workers)
        )
        with strategy.scope():
            model = build_model()
        model.fit(seq, epochs=epochs, verbose=0)
        np.savez(out, *model.get_weights())
        return 0

    class RecordingSequence(OneHotSequence):
        """Records the rows of every batch as it is read, per epoch."""

        def __getitem__(self, index):
            self.consumed.setdefault(self.epoch, []).append(self.batch_rows(index).copy())
            return super().__getitem__(index)

    seqs: list[RecordingSequence] = []

    def make_sequence(shard_index: int, num_shards: int) -> OneHotSequence:
        seq = RecordingSequence(
            store, "train", batch_size, seed=0, shards=ShardOptions(shard_index, num_shards)
        )
        seq.consumed = {}
        seqs.append(seq)
        return seq

    from textvae.training.callbacks import KLAnnealing

    ended: list[int] = []
    run = os.path.join(os.path.dirname(out), f"checkpoint{task_index}")
    fit_started = time.perf_counter()
    model, history = fit_distributed(
        strategy,
        build_model,
        make_sequence,
        epochs,
        callbacks=[
            KLAnnealing(4),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch)),
        ],
        out=run,  # written by the chief only
        log=None,
        verbose=0,
    )
    fit_seconds = time.perf_counter() - fit_started
    (seq,) = seqs
    arrays = {f"rows_{e}": np.concatenate(batches) for e, batches in seq.consumed.items()}
    arrays.update({f"batches_{e}": np.array(len(b)) for e, b in seq.consumed.items()})
    arrays.update({f"weight_{i}": w for i, w in enumerate(model.get_weights())})
    arrays.update({f"history_{key}": np.array(v) for key, v in history.items()})
    np.savez(
        out,
        task_index=task_index,
        num_workers=num_workers,
        is_chief=is_chief,
        replicas=strategy.num_replicas_in_sync,
        iterations=int(model.optimizer.iterations.numpy()),
        epochs_ended=np.array(ended),
        fit_seconds=fit_seconds,
        total_seconds=time.perf_counter() - started,
        **arrays,
    )
    return 0


def mirrored(store: str, out: str) -> int:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from textvae.batching import OneHotSequence
    from textvae.model.vae import build_vae
    from textvae.training.distributed import make_train_step

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    # SGD: Adam's first steps move every weight by about +-learning_rate whatever the size
    # of its gradient, so rounding-level differences in near-zero gradients would show.
    # clipnorm=1 is active here (some gradients' norms are 1.4-3.7): the test covers it.
    seq = OneHotSequence(store, "train", 8, seed=0)
    batches = [seq[i] for i in range(3)]
    # Two replicas draw the sampling noise for their halves of the batch, one process draws
    # it for the whole batch in one array: near-zero noise makes the two comparable.
    sizes = dict(SIZES, epsilon_std=1e-6, word_dropout=0.0)  # no randomness per replica
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_vae(VOCAB, MAX_LEN, seed=0, **sizes)
    reference = build_vae(VOCAB, MAX_LEN, seed=0, **sizes)
    reference.set_weights(model.get_weights())
    for m, scope in ((model, strategy.scope()), (reference, contextlib.nullcontext())):
        loss, loss_weights = m.losses_for_compile()
        with scope:
            m.compile(
                optimizer=keras.optimizers.SGD(0.01, clipnorm=1.0),
                loss=loss,
                loss_weights=loss_weights,
            )
    results = {}
    for name, m, s in (("mirrored", model, strategy), ("single", reference, None)):
        step = make_train_step(m, s)
        m.kl_weight.assign(1.0)
        results[f"{name}_loss"] = np.array([step(x, y) for x, y in batches])
        results.update({f"{name}_w{i}": w for i, w in enumerate(m.get_weights())})
        replicas = (s or tf.distribute.get_strategy()).num_replicas_in_sync
        results[f"{name}_replicas"] = np.array(replicas)
    # The first global batch's gradient norms, to show that clipping was active.
    fresh = build_vae(VOCAB, MAX_LEN, seed=0, **sizes)
    x, y = batches[0]
    with tf.GradientTape() as tape:
        loss = fresh.compute_loss(x=x, y=y, y_pred=fresh(x, training=True))
    grads = tape.gradient(loss, fresh.trainable_variables)
    results["grad_norms"] = np.array([float(tf.norm(tf.convert_to_tensor(g))) for g in grads])
    np.savez(out, **results)
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "launch":
        if "--lo-up" in args:
            args.remove("--lo-up")
            _loopback_up()
        mode, store, outdir, epochs, batch, timeout = args
        sys.exit(launch(mode, store, outdir, epochs, batch, float(timeout)))
    if command == "worker":
        mode, store, out, epochs, batch = args
        sys.exit(worker(mode, store, out, int(epochs), int(batch)))
    if command == "mirrored":
        sys.exit(mirrored(*args))
    sys.exit(f"unknown command {command!r}")
