"""The ingest on Dask (``scheduler=``): the same store byte for byte as one process, locally and
on s3://, and one clear error for each fault of a cluster (a worker killed, the scheduler gone,
a task that raises), no store that opens as complete, the lock released.

One ``LocalCluster`` of 2 worker processes (one thread each, over loopback) serves the module;
the scheduler-gone tests start a scheduler and a worker of their own, in subprocesses, since
they kill the scheduler."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")  # the test extra installs it: never skipped there

import dask  # noqa: E402  (after the importorskip above)
import s3fs  # noqa: E402
from s3_server import free_port, objects  # noqa: E402
from test_parallel import FORMATS, SPEC, _TrappedCorpus, assert_same_bytes  # noqa: E402

from textvae.cli import EXIT_USER_ERROR, ingest_main  # noqa: E402
from textvae.data import TokenStore, build_store, dask_ingest, open_corpus  # noqa: E402
from textvae.data.corpus import JsonlCorpus  # noqa: E402
from textvae.errors import (  # noqa: E402
    ClusterError,
    ClusterUnavailableError,
    CorpusError,
    MissingExtraError,
    TextVAEError,
)
from textvae.testing import random_reviews, write_jsonl  # noqa: E402

#: A task may be rerun once after its worker died (Dask's default is 3): the test that kills
#: every worker running one task then fails after 2 deaths, not 4 (each restart costs seconds).
ALLOWED_FAILURES = 1
START_S = 60
SCHEDULER_FLAGS = ("--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", ":0")
#: no nanny: a worker whose scheduler is gone then ends instead of waiting to be restarted
WORKER_FLAGS = ("--nthreads", "1", "--no-dashboard", "--no-nanny")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, distributed.Client]]:
    """The module's cluster: its address, and a client the tests use to inspect it."""
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        yield local.scheduler_address, client


@pytest.fixture
def address(cluster) -> str:
    """The module cluster's address, once both its workers are up (a test may have killed one:
    its nanny starts another)."""
    scheduler, client = cluster
    client.wait_for_workers(2, timeout=START_S)
    return scheduler


def _lock_left(path: Path | str) -> bool:
    return Path(f"{path}.lock").exists()


def _assert_never_complete(path: str, **options) -> None:
    """Nothing at ``path`` opens as a store (it is gone, or refused as incomplete)."""
    with pytest.raises(TextVAEError):
        TokenStore.open(path, storage_options=options or None)


# -- the same bytes ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_dask_cluster_writes_the_same_bytes_as_one_process(tmp_path, address, rng, fmt):
    splits = {"train": random_reviews(rng, 37), "test": random_reviews(rng, 11)}
    corpus = open_corpus(FORMATS[fmt](tmp_path / fmt, splits))
    seen: dict[str, list[tuple[str, int]]] = {"one": [], "dask": []}
    one = build_store(
        tmp_path / "one.zarr", corpus, SPEC, workers=1, progress=lambda *a: seen["one"].append(a)
    )
    dask_store = build_store(
        tmp_path / "dask.zarr",
        corpus,
        SPEC,
        scheduler=address,
        progress=lambda *a: seen["dask"].append(a),
    )
    assert dask_store.num_rows("train") == 37 and dask_store.num_rows("test") == 11
    assert_same_bytes(Path(one.path), Path(dask_store.path))
    last = {name: dict(calls) for name, calls in seen.items()}
    assert last["one"] == last["dask"] and last["dask"]["train"] == 37
    assert not _lock_left(tmp_path / "dask.zarr")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_sharded_store_on_dask_is_the_one_of_one_process(tmp_path, address, corpus):
    # Each task is a whole shard (three chunks of two rows): one writer per object.
    spec = dataclasses.replace(SPEC, shard_rows=6)
    one = build_store(tmp_path / "one.zarr", open_corpus(corpus), spec, workers=1)
    dask_store = build_store(tmp_path / "dask.zarr", open_corpus(corpus), spec, scheduler=address)
    assert dask_store.shard_rows == 6
    assert_same_bytes(Path(one.path), Path(dask_store.path))


def test_cli_scheduler_local_starts_dask_processes(tmp_path, corpus, capsys):
    # --scheduler local: a LocalCluster of --workers processes for this ingest alone
    args = [str(corpus), "--vocab", "12", "--max-len", "9", "--chunk-rows", "2", "--quiet"]
    assert ingest_main([args[0], str(tmp_path / "one.zarr"), *args[1:], "--workers", "1"]) == 0
    local = [args[0], str(tmp_path / "local.zarr"), *args[1:], "--workers", "2"]
    assert ingest_main([*local, "--scheduler", "local"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_same_bytes(tmp_path / "one.zarr", tmp_path / "local.zarr")


@pytest.mark.timeout(120)
def test_an_s3_store_on_dask_has_the_same_objects(bucket, s3_env, corpus, address):
    # The cluster's workers started before this test's AWS_* variables: they reach the bucket
    # through the build's storage_options alone, as a remote cluster's workers would.
    options = {"endpoint_url": s3_env, "key": "testing", "secret": "testing"}
    one, two = f"s3://{bucket}/one.zarr", f"s3://{bucket}/dask.zarr"
    build_store(one, open_corpus(corpus), SPEC, workers=1, storage_options=options)
    build_store(two, open_corpus(corpus), SPEC, scheduler=address, storage_options=options)
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    written = objects(s3_env, one)
    assert len(written) > 10 and written == objects(s3_env, two)
    assert not fs.exists(f"{bucket}/dask.zarr.lock")


# -- a task that raises ------------------------------------------------------------------------
def _stopped_builds() -> set[str]:
    return set(dask_ingest._STOPPED)


def test_a_tasks_error_is_raised_as_in_one_process_and_nothing_is_left(
    tmp_path, corpus, address, cluster
):
    client = cluster[1]
    stopped_before = client.run(_stopped_builds)
    trapped = _TrappedCorpus.from_path(corpus)
    errors = {}
    for name, kwargs in {"one": {"workers": 1}, "dask": {"scheduler": address}}.items():
        target = tmp_path / f"{name}.zarr"
        with pytest.raises(CorpusError) as err:
            build_store(target, trapped, SPEC, **kwargs)
        errors[name] = str(err.value)
        assert not target.exists() and not _lock_left(target)
    assert errors["one"] == errors["dask"] and "is a trap" in errors["one"]
    # every worker was told that the build stopped (a task of it starting later writes nothing)
    stopped = client.run(_stopped_builds)
    assert all(len(stopped[w] - stopped_before.get(w, set())) == 1 for w in stopped), stopped


# -- a worker killed ---------------------------------------------------------------------------
def _worker_pids(client: distributed.Client) -> list[int]:
    return sorted(client.run(os.getpid).values())


def test_a_worker_killed_once_has_its_task_rerun_and_the_store_is_the_same(
    tmp_path, corpus, address, cluster
):
    # A chunk task writes its whole chunk from its records alone: Dask reruns the task of a
    # dead worker elsewhere and the store is byte for byte the one of one process.
    client = cluster[1]
    victim = _worker_pids(client)[0]
    killed = []

    def kill_one(stage: str, n: int) -> None:
        if stage == "train" and n >= 6 and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(n)

    one = build_store(tmp_path / "one.zarr", open_corpus(corpus), SPEC, workers=1)
    dask_store = build_store(
        tmp_path / "dask.zarr", open_corpus(corpus), SPEC, scheduler=address, progress=kill_one
    )
    assert killed
    assert_same_bytes(Path(one.path), Path(dask_store.path))
    assert not _lock_left(tmp_path / "dask.zarr")
    assert victim not in _worker_pids(client)


class _KillerText(str):
    """A review text that kills the process tokenising it unless that is the ingest's own."""

    parent = 0

    def lower(self) -> str:
        if os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().lower()


class _KillerCorpus(JsonlCorpus):
    """The test split's 4th review kills every worker that encodes its chunk."""

    def _reviews(self, split):
        for i, (text, label) in enumerate(super()._reviews(split)):
            if split == "test" and i == 3:
                text = _KillerText(text)
                text.parent = os.getpid()
            yield text, label


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_task_that_kills_its_workers_is_one_cluster_error(where, tmp_path, corpus, request):
    address = request.getfixturevalue("address")
    options = None
    if where == "s3":
        bucket, endpoint = request.getfixturevalue("bucket"), request.getfixturevalue("s3_env")
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        target = f"s3://{bucket}/dask.zarr"
    else:
        target = str(tmp_path / "dask.zarr")
    with pytest.raises(ClusterError) as err:
        build_store(
            target,
            _KillerCorpus.from_path(corpus),
            SPEC,
            scheduler=address,
            storage_options=options,
        )
    message = str(err.value)
    assert "Dask workers kept dying while running encode_chunk-" in message
    assert "run `textvae-ingest` again" in message and "\n" not in message
    _assert_never_complete(target, **(options or {}))
    if where == "s3":
        fs = s3fs.S3FileSystem(**{k: options[k] for k in ("key", "secret")}, endpoint_url=endpoint)
        assert not fs.exists(f"{bucket}/dask.zarr.lock")
    else:
        assert not Path(target).exists() and not _lock_left(target)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_in_a_terminal_with_dask_local_leaves_no_store_and_no_process(tmp_path):
    # SIGINT to the whole process group, as a terminal sends it: the Dask workers ignore it
    # (dask_setup), the build stops its tasks, removes the partial store and exits 130 with
    # one line; a worker that died of it finished its chunk after the cleanup (a folder left)
    root = tmp_path / "big"
    write_jsonl(root / "x_train.jsonl", random_reviews(np.random.default_rng(2), 20000, 200))
    target = tmp_path / "s.zarr"
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from textvae.cli import ingest_main; sys.exit(ingest_main())"
    )
    argv = [str(root), str(target), "--vocab", "12", "--chunk-rows", "64", "--workers", "2"]
    with subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--scheduler", "local"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    ) as proc:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "vocab: ..." once the words are counted: encoding runs
        assert first.startswith("vocab:"), first
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in rest
    assert not target.exists() and not _lock_left(target)
    time.sleep(3)  # multiprocessing's resource tracker ends a moment after its parent
    with pytest.raises(ProcessLookupError):  # nobody is left in its process group
        os.killpg(proc.pid, 0)


# -- the scheduler gone ------------------------------------------------------------------------
@contextlib.contextmanager
def _cluster_in_subprocesses(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A scheduler and one worker, each its own process: yields the address and the scheduler."""
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    python = [sys.executable, "-m"]
    started = []
    with (tmp_path / "scheduler.log").open("wb") as log:
        started.append(
            subprocess.Popen(
                [*python, "distributed.cli.dask_scheduler", "--port", port, *SCHEDULER_FLAGS],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    with (tmp_path / "worker.log").open("wb") as log:
        started.append(
            subprocess.Popen(
                [*python, "distributed.cli.dask_worker", address, *WORKER_FLAGS],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        )
    try:
        with distributed.Client(address, timeout=START_S, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=START_S)
        yield address, started[0]
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_scheduler_gone_is_one_error_and_no_complete_store(where, tmp_path, request):
    corpus = request.getfixturevalue("wordy_corpus")  # 300 reviews: many chunks to be in flight
    options = None
    if where == "s3":
        bucket, endpoint = request.getfixturevalue("bucket"), request.getfixturevalue("s3_env")
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        target = f"s3://{bucket}/dask.zarr"
    else:
        target = str(tmp_path / "dask.zarr")
    with _cluster_in_subprocesses(tmp_path) as (address, scheduler):

        def kill_scheduler(stage: str, n: int) -> None:
            if stage == "train" and n >= 20 and scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()

        with pytest.raises(ClusterUnavailableError) as err:
            build_store(
                target,
                open_corpus(corpus),
                SPEC,
                scheduler=address,
                progress=kill_scheduler,
                storage_options=options,
            )
    message = str(err.value)
    assert message.startswith(f"lost the Dask scheduler at {address} during the ingest")
    assert "run `textvae-ingest` again" in message
    _assert_never_complete(target, **(options or {}))
    if where == "s3":
        fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint)
        assert not fs.exists(f"{bucket}/dask.zarr.lock")
    else:
        # the build waited for the task its worker ran before removing the partial store
        assert not Path(target).exists() and not _lock_left(target)


def test_an_unreachable_scheduler_is_one_line_and_takes_no_lock(
    tmp_path, corpus, capsys, monkeypatch
):
    monkeypatch.setattr(dask_ingest, "CONNECT_TIMEOUT_S", 0.5)
    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens there
    target = tmp_path / "s.zarr"
    argv = [str(corpus), str(target), "--vocab", "12", "--quiet", "--scheduler", address]
    assert ingest_main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the Dask scheduler at {address}")
    assert err.count("\n") == 1 and "--scheduler local" in err
    assert not target.exists() and not _lock_left(target)
    with pytest.raises(ClusterUnavailableError):
        build_store(target, open_corpus(corpus), SPEC, scheduler=address)


# -- options -----------------------------------------------------------------------------------
def test_workers_with_a_scheduler_address_is_a_usage_error(tmp_path, corpus, capsys):
    argv = [str(corpus), str(tmp_path / "s.zarr"), "--vocab", "12", "--quiet"]
    with pytest.raises(SystemExit) as exit_:
        ingest_main([*argv, "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"])
    assert exit_.value.code == EXIT_USER_ERROR
    assert "`workers` counts local processes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="scheduler"):
        build_store(tmp_path / "s.zarr", open_corpus(corpus), SPEC, scheduler="tcp://h :1")
    assert not (tmp_path / "s.zarr").exists()


def test_without_dask_installed_the_error_names_the_extra(tmp_path, corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    target = tmp_path / "s.zarr"
    with pytest.raises(MissingExtraError, match=r'pip install "textvae\[dask\]"'):
        build_store(target, open_corpus(corpus), SPEC, scheduler="local")
    assert not target.exists() and not _lock_left(target)
