"""s3:// stores against a session-scoped moto server on 127.0.0.1 (fake credentials in AWS_*,
so nothing reaches the internet; ``s3_server.py`` and the fixtures of ``conftest.py``); moto and
s3fs come with the ``test`` extra: never skipped."""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import s3fs  # a missing s3fs fails this module: the test extra installs it
from s3_server import free_port, isolate_aws, moto_server, objects

from textvae.cli import EXIT_USER_ERROR, ingest_main
from textvae.data import StoreSpec, TokenStore, build_store, open_corpus
from textvae.errors import (
    IncompleteStoreError,
    StoreAccessError,
    StoreExistsError,
    StoreNotFoundError,
    StoreUnavailableError,
    TextVAEError,
)
from textvae.testing import random_reviews, write_jsonl

INGEST_ARGS = ["--vocab", "12", "--max-len", "16", "--chunk-rows", "8", "--quiet"]


def _build(path: str | Path, corpus: Path, **kwargs) -> TokenStore:
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)
    return build_store(path, open_corpus(corpus), spec, **kwargs)


def _assert_same_store(a: TokenStore, b: TokenStore) -> None:
    assert a.attrs == b.attrs
    assert a.vocab == b.vocab
    for split in a.splits:
        np.testing.assert_array_equal(a.read(split, slice(None)), b.read(split, slice(None)))
        np.testing.assert_array_equal(a.labels(split), b.labels(split))
        np.testing.assert_array_equal(a.lengths(split), b.lengths(split))
        assert a.chunk_rows(split) == b.chunk_rows(split)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


# -- ingest and read back --------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_ingest_to_s3_equals_local(bucket, corpus, tmp_path, capsys):
    url = f"s3://{bucket}/x.zarr"
    local = tmp_path / "x.zarr"
    assert ingest_main([str(corpus), str(local), *INGEST_ARGS]) == 0
    assert ingest_main([str(corpus), url, *INGEST_ARGS]) == 0
    assert f"wrote {url}" in capsys.readouterr().out
    remote = TokenStore.open(url, vocab_size=12, max_len=16)
    assert remote.path == url
    _assert_same_store(remote, TokenStore.open(local))


@pytest.mark.timeout(60)
def test_storage_option_endpoint_from_cli(bucket, s3_env, corpus, tmp_path, monkeypatch):
    # No AWS_ENDPOINT_URL: only --storage-option says where the server is.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    url = f"s3://{bucket}/opts.zarr"
    option = f"endpoint_url={s3_env}"
    assert ingest_main([str(corpus), url, *INGEST_ARGS, "--storage-option", option]) == 0
    remote = TokenStore.open(url, storage_options={"endpoint_url": s3_env})
    _assert_same_store(remote, _build(tmp_path / "local.zarr", corpus))


def test_storage_option_parsing(tmp_path, corpus, capsys):
    for argv in (
        [str(corpus), str(tmp_path / "local.zarr"), "--storage-option", "anon=true"],
        [str(corpus), "s3://bucket/x.zarr", "--storage-option", "no-equals-sign"],
    ):
        with pytest.raises(SystemExit) as exc:
            ingest_main(argv)
        assert exc.value.code == EXIT_USER_ERROR
    assert "--storage-option" in capsys.readouterr().err
    assert not (tmp_path / "local.zarr").exists()


@pytest.mark.timeout(60)
def test_sequence_over_s3_equals_local(bucket, corpus, tmp_path):
    from textvae.batching import OneHotSequence, SamplingOptions

    url = f"s3://{bucket}/seq.zarr"
    _build(url, corpus)
    local = _build(tmp_path / "seq.zarr", corpus)
    kwargs = {"batch_size": 5, "shuffle": True, "seed": 3}
    kwargs["sampling"] = SamplingOptions(window_chunks=2)
    remote_seq = OneHotSequence(url, "train", **kwargs)
    local_seq = OneHotSequence(local, "train", **kwargs)
    clone = pickle.loads(pickle.dumps(remote_seq))
    assert clone._store is None  # reopened lazily, on first use, in whichever process
    assert len(remote_seq) == len(local_seq) == len(clone) == 8
    for seq in (remote_seq, clone):
        for i in range(len(local_seq)):
            ids, outputs = seq[i]
            ref_ids, ref_outputs = local_seq[i]
            np.testing.assert_array_equal(ids, ref_ids)
            for name in ("reconstruction", "sentiment"):
                np.testing.assert_array_equal(outputs[name], ref_outputs[name])


@pytest.mark.timeout(60)
def test_sequence_reads_only_the_chunks_it_needs(bucket, corpus, monkeypatch):
    from zarr.storage import FsspecStore

    from textvae.batching.sequence import OneHotSequence

    url = f"s3://{bucket}/chunks.zarr"
    _build(url, corpus)  # train: 37 rows in 5 chunks of 8
    fetched: list[str] = []
    get = FsspecStore.get

    async def recording_get(self, key, *args, **kwargs):
        fetched.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(FsspecStore, "get", recording_get)
    seq = OneHotSequence(url, "train", batch_size=4, shuffle=False, targets="sparse")
    fetched.clear()  # opening reads metadata (zarr.json) only; count the batch's reads
    seq[4]  # rows 16..19: all in chunk 2 (rows 16..23)
    token_chunks = [key for key in fetched if key.startswith("train/tokens/")]
    assert token_chunks == ["train/tokens/c/2/0"]
    assert not any(key.startswith("train/lengths/") for key in fetched)


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_missing_bucket(s3_env, corpus, capsys):
    from textvae.batching.sequence import OneHotSequence

    url = "s3://textvae-no-such-bucket/x.zarr"
    with pytest.raises(StoreNotFoundError, match=r"bucket 'textvae-no-such-bucket'.*create it"):
        TokenStore.open(url)
    with pytest.raises(StoreNotFoundError, match="textvae-no-such-bucket"):
        OneHotSequence(url, "train")
    assert ingest_main([str(corpus), url, *INGEST_ARGS]) == EXIT_USER_ERROR
    assert "textvae-no-such-bucket" in _one_error_line(capsys)


@pytest.mark.timeout(60)
def test_missing_store_in_existing_bucket(bucket):
    with pytest.raises(StoreNotFoundError, match=f"no token store at s3://{bucket}/absent.zarr"):
        TokenStore.open(f"s3://{bucket}/absent.zarr")


@pytest.mark.timeout(60)
def test_existing_store_not_overwritten(bucket, corpus, capsys):
    url = f"s3://{bucket}/x.zarr"
    assert ingest_main([str(corpus), url, *INGEST_ARGS]) == 0
    before = TokenStore.open(url).read("train", slice(None))
    capsys.readouterr()
    assert ingest_main([str(corpus), url, *INGEST_ARGS[2:], "--vocab", "10"]) == EXIT_USER_ERROR
    assert "--overwrite" in _one_error_line(capsys)
    store = TokenStore.open(url)
    assert store.vocab_size == 12
    np.testing.assert_array_equal(store.read("train", slice(None)), before)

    # --overwrite replaces it, leaving nothing of the old store behind.
    argv = [str(corpus), url, *INGEST_ARGS[2:], "--vocab", "10", "--overwrite"]
    assert ingest_main(argv) == 0
    assert TokenStore.open(url).vocab_size == 10


@pytest.mark.timeout(60)
def test_any_object_under_the_prefix_counts_as_existing(bucket, s3_env, corpus):
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    fs.pipe(f"{bucket}/x.zarr/notes.txt", b"not a store")
    with pytest.raises(StoreExistsError, match="--overwrite"):
        _build(f"s3://{bucket}/x.zarr", corpus)
    assert fs.cat(f"{bucket}/x.zarr/notes.txt") == b"not a store"
    _build(f"s3://{bucket}/x.zarr", corpus, overwrite=True)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/x.zarr/notes.txt")


@pytest.mark.timeout(60)
def test_missing_chunk_object_is_damage_not_fill_values(bucket, s3_env, corpus):
    """A deleted chunk object reads as fill value in zarr (-1: unlabelled): every read of it
    raises StoreCorruptError at once (not retried, not waited for), naming the chunk."""
    from textvae.batching import OneHotSequence
    from textvae.errors import StoreCorruptError

    url = f"s3://{bucket}/holes.zarr"
    _build(url, corpus)
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    fs.rm(f"{bucket}/holes.zarr/train/labels/c/0")
    store = TokenStore.open(url, retry_seconds=30)
    started = time.monotonic()
    for read in (lambda: store.labels("train"), lambda: OneHotSequence(url, "train")[0]):
        with pytest.raises(StoreCorruptError) as exc:
            read()
        message = str(exc.value)
        assert url in message and "chunk of train/labels holding rows 0-36 " in message
        assert "its file train/labels/c/0 is missing" in message and "--overwrite" in message
    assert time.monotonic() - started < 10  # a missing key is not a transient fault
    np.testing.assert_array_equal(store.read("train", [0]).shape, (1, 16))


def test_sharded_store_on_s3(bucket, s3_env, corpus, tmp_path):
    """A sharded store on object storage: the rows of the local one, verified chunk by chunk
    (a shard's index read by byte range), and a damaged chunk inside a shard named."""
    from textvae.data import verify_store

    url = f"s3://{bucket}/sharded.zarr"
    spec = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8, shard_rows=16)
    remote = build_store(url, open_corpus(corpus), spec)
    plain = _build(tmp_path / "plain.zarr", corpus)
    assert remote.shard_rows == 16 and plain.shard_rows == 0
    for split in plain.splits:
        rows = [5, plain.num_rows(split) - 1, 2]
        np.testing.assert_array_equal(remote.read(split, rows), plain.read(split, rows))
        np.testing.assert_array_equal(remote.labels(split), plain.labels(split))
        np.testing.assert_array_equal(remote.lengths(split), plain.lengths(split))
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    assert sorted(fs.ls(f"{bucket}/sharded.zarr/train/tokens/c")) == [
        f"{bucket}/sharded.zarr/train/tokens/c/{k}" for k in range(3)
    ]
    assert verify_store(url).ok
    shard = f"{bucket}/sharded.zarr/train/tokens/c/1/0"  # rows 16-31: chunks 16-23, 24-31
    data = bytearray(fs.cat(shard))
    data[10] ^= 0xFF  # inside the first chunk, which the shard's bytes begin with
    fs.pipe(shard, bytes(data))
    assert [str(d) for d in verify_store(url).damaged] == [
        "train/tokens rows 16-23: checksum mismatch"
    ]


@pytest.mark.timeout(60)
def test_interrupted_build_is_refused(bucket, corpus, capsys):
    url = f"s3://{bucket}/cut.zarr"

    def interrupt(stage: str, done: int) -> None:
        if stage == "train" and done >= 16:  # two chunks of train written, test not started
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _build(url, corpus, progress=interrupt)
    with pytest.raises(IncompleteStoreError, match="--overwrite"):
        TokenStore.open(url)
    # The left-over store is not silently reused: a rebuild needs --overwrite, then opens.
    assert ingest_main([str(corpus), url, *INGEST_ARGS]) == EXIT_USER_ERROR
    assert "--overwrite" in _one_error_line(capsys)
    assert ingest_main([str(corpus), url, *INGEST_ARGS, "--overwrite"]) == 0
    assert TokenStore.open(url).num_rows("train") == 37


@pytest.mark.timeout(90)
def test_denied_access(monkeypatch, tmp_path, corpus, capsys):
    # A moto server with authentication on knows no access key, so it denies every request,
    # as S3 does for wrong credentials (403 InvalidAccessKeyId / Forbidden).
    isolate_aws(monkeypatch, tmp_path)
    with moto_server(tmp_path / "auth.log", INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        url = "s3://textvae-private/x.zarr"
        options = {"endpoint_url": endpoint}  # its own fsspec instance, not a cached one
        with pytest.raises(StoreAccessError) as exc:
            TokenStore.open(url, storage_options=options)
        assert isinstance(exc.value, PermissionError) and isinstance(exc.value, TextVAEError)
        message = str(exc.value)
        assert "\n" not in message and "denied" in message and "AWS_ACCESS_KEY_ID" in message
        with pytest.raises(StoreAccessError):
            _build(url, corpus, storage_options=options)
        argv = [str(corpus), url, *INGEST_ARGS, "--storage-option", f"endpoint_url={endpoint}"]
        assert ingest_main(argv) == EXIT_USER_ERROR
        assert "denied" in _one_error_line(capsys)


@pytest.mark.timeout(60)
def test_resolve_store_ingests_into_a_url_with_storage_options(
    bucket, s3_env, corpus, tmp_path, monkeypatch
):
    from textvae.data import resolve_store

    # No AWS_ENDPOINT_URL: only storage_options say where the server is.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = {"endpoint_url": s3_env}
    url = f"s3://{bucket}/resolved.zarr"
    logs = []
    built = resolve_store(
        corpus,
        vocab_size=12,
        max_len=16,
        store_path=url,
        storage_options=options,
        log=logs.append,
    )
    assert built.path == url and "ingesting" in logs[-1]
    again = resolve_store(
        corpus, vocab_size=12, max_len=16, store_path=url, storage_options=options, log=logs.append
    )
    assert logs[-1].startswith(f"using the store {url}")
    opened = resolve_store(url, vocab_size=12, max_len=16, storage_options=options)
    local = build_store(
        tmp_path / "local.zarr", open_corpus(corpus), StoreSpec(vocab_size=12, max_len=16)
    )
    for store in (again, opened):
        for split in ("train", "test"):
            np.testing.assert_array_equal(
                store.read(split, slice(None)), local.read(split, slice(None))
            )


# -- the server going away in the middle of reading ----------------------------------------------
class _Proxy:
    """A TCP proxy on its own local port in front of the moto server.

    ``stop()`` closes the port and every open connection, as a stopped server does (new
    connections are refused); ``start()`` serves on the same port again; ``start(hang=True)``
    accepts connections and never answers, as a server that is up but stuck.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._target = target_port
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self, *, hang: bool = False) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._stopped = threading.Event()
        serve = threading.Thread(target=self._serve, args=(listener, hang, self._stopped))
        serve.daemon = True
        serve.start()

    def _serve(self, listener: socket.socket, hang: bool, stopped: threading.Event) -> None:
        with listener:
            while not stopped.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    self._sockets.add(client)
                if hang:
                    continue  # held open, never answered
                upstream = socket.create_connection(("127.0.0.1", self._target))
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    self._sockets.add(upstream)
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopped.set()
        time.sleep(0.1)  # the listener closes within its accept timeout
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(s3_env) -> Iterator[_Proxy]:
    server = _Proxy(int(s3_env.rsplit(":", 1)[1]))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(s3_endpoint, tmp_path_factory) -> tuple[str, np.ndarray]:
    """One store on the server for the outage tests, which only read it: its URL and the train
    ids of the same corpus built locally."""
    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(2)
    write_jsonl(root / "c" / "c_train.jsonl", random_reviews(rng, 37))
    write_jsonl(root / "c" / "c_test.jsonl", random_reviews(rng, 11))
    with pytest.MonkeyPatch.context() as patch:
        isolate_aws(patch, root)
        name = f"textvae-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True).mkdir(name)
        url = f"s3://{name}/served.zarr"
        _build(url, root / "c", storage_options={"endpoint_url": s3_endpoint})
    expected = _build(root / "local.zarr", root / "c").read("train", slice(None))
    return url, expected


@pytest.mark.timeout(60)
def test_reads_retry_through_a_short_outage(served, proxy):
    url, expected = served
    options = {"endpoint_url": proxy.endpoint}
    store = TokenStore.open(url, storage_options=options, retry_seconds=30)
    np.testing.assert_array_equal(store.read("train", slice(0, 8)), expected[:8])
    proxy.stop()
    restart = threading.Timer(1.0, proxy.start)
    restart.start()
    start = time.monotonic()
    ids = store.read("train", [9, 30, 17])  # three chunks not read yet
    assert time.monotonic() - start >= 0.9  # it waited for the server, then read
    np.testing.assert_array_equal(ids, expected[[9, 30, 17]])
    restart.join()


@pytest.mark.timeout(60)
def test_reads_fail_after_the_retry_time_with_one_error(served, proxy, monkeypatch):
    from textvae.batching.sequence import OneHotSequence

    url, _ = served
    options = {"endpoint_url": proxy.endpoint}
    monkeypatch.setenv("TEXTVAE_RETRY_SECONDS", "1.5")  # reaches the Sequence's own store
    seq = OneHotSequence(url, "train", batch_size=4, shuffle=False, storage_options=options)
    seq[0], seq[1]  # chunk 0: read, then cached
    proxy.stop()
    for read in (lambda: seq[4], lambda: TokenStore.open(url, storage_options=options)):
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError) as exc:
            read()
        waited = time.monotonic() - start
        assert 1.2 <= waited < 8, waited  # bounded: about the retry time (0.2 s less at most)
        message = str(exc.value)
        assert isinstance(exc.value, ConnectionError) and isinstance(exc.value, TextVAEError)
        assert "\n" not in message and message.startswith(f"cannot read {url}: ")
        assert "Could not connect to the endpoint URL" in message
        assert "TEXTVAE_RETRY_SECONDS" in message


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_is_cut_off(served, proxy):
    url, _ = served
    options = {"endpoint_url": proxy.endpoint}
    store = TokenStore.open(url, storage_options=options, retry_seconds=1.5)
    store.read("train", slice(0, 8))
    proxy.stop()
    proxy.start(hang=True)
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="TimeoutError: no answer in time"):
        store.read("train", slice(8, 16))
    assert time.monotonic() - start < 5  # s3fs alone waits 5 x 15 s read timeouts


@pytest.mark.timeout(60)
def test_commands_print_one_line_when_the_server_is_down(served, proxy, capsys, monkeypatch):
    from textvae.cli import verify_main

    url, _ = served
    proxy.stop()
    monkeypatch.setenv("TEXTVAE_RETRY_SECONDS", "0.5")
    argv = [url, "--storage-option", f"endpoint_url={proxy.endpoint}", "--quiet"]
    assert verify_main(argv) == EXIT_USER_ERROR
    assert _one_error_line(capsys).startswith(f"error: cannot read {url}: ")


@pytest.mark.timeout(60)
def test_server_lost_during_ingest(bucket, proxy, corpus):
    url = f"s3://{bucket}/lost.zarr"
    # One botocore attempt per request (their retry configured, not ours): fails fast.
    options = {
        "endpoint_url": proxy.endpoint,
        "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}},
    }

    def cut(stage: str, done: int) -> None:
        if stage == "train" and done >= 16:
            proxy.stop()

    with pytest.raises(StoreUnavailableError, match=f"lost {url} during the build"):
        _build(url, corpus, progress=cut, storage_options=options)
    proxy.start()
    with pytest.raises(IncompleteStoreError):
        TokenStore.open(url, storage_options=options)


@pytest.mark.timeout(60)
def test_two_ingests_into_one_url(bucket, corpus, capsys):
    from textvae.data.location import remote_fs
    from textvae.data.lock import StoreLock

    url = f"s3://{bucket}/locked.zarr"
    fs, inner = remote_fs(url, None)
    with StoreLock(url, fs=fs, inner=inner):  # another ingest, in this very process
        assert ingest_main([str(corpus), url, *INGEST_ARGS]) == EXIT_USER_ERROR
        line = _one_error_line(capsys)
        assert f"{url} is being built by another ingest (pid {os.getpid()}" in line
        assert f"delete {url}.lock" in line
    assert ingest_main([str(corpus), url, *INGEST_ARGS]) == 0
    fs.invalidate_cache()
    assert not fs.exists(f"{inner}.lock")


@pytest.mark.timeout(60)
def test_parallel_ingest_to_s3_writes_the_same_objects(bucket, s3_env, corpus):
    # Each worker opens the bucket itself and writes its own chunks of tokens.
    one, two = f"s3://{bucket}/one.zarr", f"s3://{bucket}/two.zarr"
    _build(one, corpus, workers=1)
    _build(two, corpus, workers=2)
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    written = objects(s3_env, one)
    assert len(written) > 10 and written == objects(s3_env, two)
    assert not fs.exists(f"{bucket}/two.zarr.lock")
