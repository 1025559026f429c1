"""Frozen, validated configuration objects for the model and a training run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["QUICK", "ModelConfig", "TrainConfig"]

_TARGETS = ("onehot", "sparse")
_DTYPES = ("float32", "float16", "uint8")


def _check_positive(obj: Any, names: tuple[str, ...], allow_none: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and loss weights of the text VAE; the defaults are the seed tutorial's sizes.

    ``sentiment_weight`` weighs the sentiment cross-entropy against the reconstruction loss
    summed over time steps; 200 is the value DESIGN.md measured to reach 0.85+ test accuracy.
    ``epsilon_std`` is the sampling noise (the seed used 0.01, nearly a plain autoencoder).
    """

    embedding_dim: int = 64
    hidden: int = 500
    dense: int = 435
    latent: int = 200
    epsilon_std: float = 1.0
    sentiment_weight: float = 200.0
    free_bits: float = 0.0
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        _check_positive(self, ("embedding_dim", "hidden", "dense", "latent"))
        for name in ("epsilon_std", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Received: {name}={getattr(self, name)!r}")
        for name in ("sentiment_weight", "free_bits"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """One training run of ``textvae-train``: data, batching, schedule, model, outputs.

    ``data`` is a token store (path or URL) or a corpus source that is ingested first into
    ``store`` (default: a cache folder, reused next time); ``None`` finds IMDB locally or
    downloads it through ``keras.datasets``. ``train_rows`` / ``eval_rows`` limit the rows used
    per epoch / for the final evaluation (random subsets, keyed on ``seed``).
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
    resume: bool = False
    overwrite: bool = False
    verbose: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        _check_positive(self, ("vocab_size", "max_len", "batch_size", "epochs", "workers"))
        _check_positive(self, ("max_queue_size",))
        _check_positive(self, ("train_rows", "eval_rows"), allow_none=True)
        if self.vocab_size < 4:
            raise ValueError(
                f"`vocab_size` must be >= 4 (ids 0-2 are reserved). Received: {self.vocab_size}"
            )
        if self.targets not in _TARGETS:
            raise ValueError(f"`targets` must be one of {_TARGETS}. Received: {self.targets!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {_DTYPES}. Received: {self.dtype!r}")
        if not self.kl_warmup_epochs >= 0:
            raise ValueError(
                f"`kl_warmup_epochs` must be >= 0. Received: {self.kl_warmup_epochs!r}"
            )
        if self.resume and self.overwrite:
            raise ValueError("`resume` and `overwrite` exclude each other: pass one of them")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; model fields may be given by name too."""
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_changes = {k: changes.pop(k) for k in list(changes) if k in model_fields}
        if model_changes:
            changes["model"] = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: ``textvae-train --quick``: a small VAE of the seed's shape that finishes on a 2-core CPU in
#: minutes on real IMDB at vocab 20,000 (README, "The quick run"). Explicit flags override it.
QUICK: dict[str, Any] = {
    "max_len": 100,
    "batch_size": 64,
    "epochs": 1,
    "train_rows": 8192,
    "eval_rows": None,
    "embedding_dim": 64,
    "hidden": 64,
    "dense": 64,
    "latent": 32,
}
