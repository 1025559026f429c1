"""Frozen, validated configuration objects for ingesting a corpus, the model and a training run.

Each is checked in ``__post_init__`` with the validators of :mod:`textvae._checks`, so a bad
value fails when the config is built, with the argument's name in the message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from textvae._checks import (
    DTYPES,
    PADDINGS,
    TARGETS,
    fraction,
    int_at_least,
    int_in_range,
    non_negative,
    one_of,
    path,
    positive_int,
)
from textvae.data.format import DEFAULT_CHUNK_ROWS
from textvae.data.vocab import check_vocab_size
from textvae.errors import InvalidArgumentError
from textvae.model.config import ModelConfig

__all__ = ["DEFAULT_CHUNK_ROWS", "QUICK", "IngestConfig", "ModelConfig", "TrainConfig"]

_REDACTED = "***"
#: The largest ``seed``: Keras seeds NumPy's global generator with it (2**32 - 1 at most).
MAX_SEED = 2**32 - 1
#: The most batch-building threads ``workers`` may ask for.
MAX_WORKERS = 256


def _check_storage_options(
    storage_options: dict[str, Any] | None, *locations: str | None
) -> dict[str, Any] | None:
    """A copy of ``storage_options``; refused unless one of ``locations`` is a URL."""
    if storage_options is None:
        return None
    if not isinstance(storage_options, dict):
        raise InvalidArgumentError(
            "`storage_options` must be a dict or None. "
            f"Received: storage_options={storage_options!r}"
        )
    from textvae.data.store import is_url  # lazy: the store imports zarr

    if storage_options and not any(loc is not None and is_url(loc) for loc in locations):
        raise InvalidArgumentError(
            "`storage_options` apply to an s3:// (or other URL) store; "
            f"none of {[loc for loc in locations if loc is not None]} is one"
        )
    return dict(storage_options)


def _redacted(storage_options: dict[str, Any] | None) -> dict[str, str] | None:
    # Saved configs (config.json) must not carry credentials: keep the keys only.
    if storage_options is None:
        return None
    return {key: _REDACTED for key in storage_options}


@dataclass(frozen=True)
class TrainConfig:
    """One training run of ``textvae-train``: data, batching, schedule, model, outputs.

    ``data`` is a token store (path or URL) or a corpus source that is ingested first into
    ``store`` (default: a cache folder, reused next time); ``None`` finds IMDB locally or
    downloads it through ``keras.datasets``. ``train_rows`` / ``eval_rows`` limit the rows used
    per epoch / for the final evaluation (random subsets, keyed on ``seed``; the Sequence's
    ``rows``). ``storage_options`` go to fsspec when ``data`` or ``store`` is a URL
    (``endpoint_url``, ``key``/``secret``, ...); :meth:`to_dict` keeps only their keys.
    ``val_fraction`` of the train split (seeded) is held out: ``best.keras`` is chosen on it,
    so the test split serves the final metrics only. ``checkpoint_steps`` / ``checkpoint_minutes``
    save the whole training state mid-epoch every that many steps / minutes, whichever comes
    first (0 turns either off; README "Stopping and resuming" says why the defaults).
    ``run_eagerly`` runs Keras' steps without tracing them (same results, slower steps; for
    debugging and for tiny models, whose graphs take longer to trace than to train).
    """

    data: str | None = None
    store: str | None = None
    out: str = "runs/textvae"
    vocab_size: int = 20000
    max_len: int = 300
    batch_size: int = 32
    epochs: int = 1
    targets: str = "onehot"
    dtype: str = "float32"
    workers: int = 2
    max_queue_size: int = 2
    seed: int = 0
    train_rows: int | None = None
    eval_rows: int | None = None
    kl_warmup_epochs: float = 1.0
    val_fraction: float = 0.05
    checkpoint_steps: int = 0
    checkpoint_minutes: float = 2.0
    resume: bool = False
    overwrite: bool = False
    run_eagerly: bool = False
    verbose: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    # Not hashed: a dict is not hashable, and a config stays usable as a dict key without it.
    storage_options: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        path("out", self.out)
        path("data", self.data, allow_none=True)
        path("store", self.store, allow_none=True)
        check_vocab_size(self.vocab_size)
        for name in ("max_len", "batch_size", "epochs", "workers", "max_queue_size"):
            positive_int(name, getattr(self, name))
        int_in_range("seed", self.seed, 0, MAX_SEED + 1)
        if self.workers > MAX_WORKERS:
            raise InvalidArgumentError(
                f"`workers` must be at most {MAX_WORKERS} (each is a thread that builds a batch; "
                f"more threads than cores only add memory). Received: workers={self.workers}"
            )
        for name in ("train_rows", "eval_rows"):
            positive_int(name, getattr(self, name), allow_none=True)
        one_of("targets", self.targets, TARGETS)
        one_of("dtype", self.dtype, DTYPES)
        non_negative("kl_warmup_epochs", self.kl_warmup_epochs)
        fraction("val_fraction", self.val_fraction)
        int_at_least("checkpoint_steps", self.checkpoint_steps, 0)
        non_negative("checkpoint_minutes", self.checkpoint_minutes)
        int_in_range("verbose", self.verbose, 0, 3)
        object.__setattr__(
            self,
            "storage_options",
            _check_storage_options(self.storage_options, self.data, self.store),
        )
        if self.resume and self.overwrite:
            raise InvalidArgumentError(
                "`resume` and `overwrite` exclude each other: pass one of them"
            )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; model fields may be given by name too."""
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_changes = {k: changes.pop(k) for k in list(changes) if k in model_fields}
        if model_changes:
            changes["model"] = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (for ``config.json``), ``storage_options`` values redacted."""
        return {**dataclasses.asdict(self), "storage_options": _redacted(self.storage_options)}


@dataclass(frozen=True)
class IngestConfig:
    """One run of ``textvae-ingest``: a corpus ``source`` into a token store at ``store``.

    ``store`` is a local path or a URL (``s3://...``; ``storage_options`` go to fsspec for it).
    ``vocab_size`` counts the reserved ids (>= 4); reviews are padded/truncated to ``max_len``
    ids by ``padding`` / ``truncating`` (``"pre"`` or ``"post"``, as Keras' ``pad_sequences``);
    ``chunk_rows`` rows are stored per chunk. ``overwrite`` replaces whatever is at ``store``.
    ``tokenizer`` names a function ``"module:function"`` (text -> list of str tokens) used
    instead of :func:`~textvae.data.vocab.tokenize`; it is imported when the ingest runs.
    ``workers`` processes ingest (``None``: all cores; 1: the plain in-process build).
    """

    source: str
    store: str
    vocab_size: int = 20000
    max_len: int = 300
    padding: str = "pre"
    truncating: str = "pre"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    overwrite: bool = False
    storage_options: dict[str, Any] | None = field(default=None, hash=False)
    tokenizer: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        path("source", self.source)
        if self.tokenizer is not None and not isinstance(self.tokenizer, str):
            raise InvalidArgumentError(
                "`tokenizer` must name a function as 'module:function' or be None. "
                f"Received: tokenizer={self.tokenizer!r}"
            )
        path("store", self.store)
        check_vocab_size(self.vocab_size)
        positive_int("max_len", self.max_len)
        positive_int("chunk_rows", self.chunk_rows)
        one_of("padding", self.padding, PADDINGS)
        one_of("truncating", self.truncating, PADDINGS)
        int_at_least(
            "workers", self.workers, 1, allow_none=True, reason="it counts the ingest processes"
        )
        object.__setattr__(
            self, "storage_options", _check_storage_options(self.storage_options, self.store)
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data, ``storage_options`` values redacted."""
        return {**dataclasses.asdict(self), "storage_options": _redacted(self.storage_options)}


#: ``textvae-train --quick``: a small VAE of the seed's shape that finishes on a 2-core CPU in
#: minutes on real IMDB at vocab 20,000 (README, "The quick run"). Explicit flags override it.
QUICK: dict[str, Any] = {
    "max_len": 100,
    # Batch 16 at a learning rate of 3e-3: 512 updates in the same compute as 128 of batch
    # 64, which a language model needs to leave the unigram plateau (README, "The model").
    "batch_size": 16,
    "learning_rate": 3e-3,
    "epochs": 1,
    # Sentiment is bounded by the data here: a logistic regression on the bags of words of
    # 8,192 reviews cut to 100 ids reaches 0.81-0.82 on the test split (README, "Results");
    # 10,240 reviews measured no better (0.804) and ran past 10 minutes.
    "train_rows": 8192,
    # The token metrics on a seeded 1,000-review subset of the test split (about 96,000
    # tokens): evaluating all 25,000 (teacher-forced with z and with z = 0) took 12 minutes at
    # 1.8 s a batch of 64, more than the whole budget. Sentiment is measured on all 25,000 (the
    # encoder alone: 31 s), since a subset's figure moves by 0.01-0.02 with its draw.
    "eval_rows": 1000,
    "embedding_dim": 64,
    "hidden": 64,
    "dense": 64,
    "latent": 32,
}
