"""Every float argument at its extremes: 0, the smallest positive float, a tiny one, a huge
one, the largest float, inf, -inf and nan. Each is refused with one line naming the argument,
or accepted as a finite value; through the commands, a refusal is a usage error (exit 2).

The fields are read from the configs themselves (``dataclasses.fields``), so a float field
added later is tried too.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest

from textvae.cli import train_config_from_args
from textvae.config import IngestConfig, ModelConfig, TrainConfig
from textvae.errors import TextVAEError

EXTREMES = (0.0, 5e-324, 1e-300, 1e300, sys.float_info.max, math.inf, -math.inf, math.nan)


def _float_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.type in ("float", float)]


CASES = [
    (cls, name, value)
    for cls in (ModelConfig, TrainConfig, IngestConfig)
    for name in _float_fields(cls)
    for value in EXTREMES
]


def test_every_config_has_its_float_fields_tried():
    assert {"learning_rate", "epsilon_std", "word_dropout"} <= set(_float_fields(ModelConfig))
    assert {"kl_warmup_epochs", "val_fraction", "checkpoint_minutes"} <= set(
        _float_fields(TrainConfig)
    )


@pytest.mark.parametrize(
    ("cls", "name", "value"), CASES, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in CASES]
)
def test_a_float_at_its_extreme_is_refused_naming_it_or_kept_finite(cls, name, value):
    try:
        config = cls(**{name: value}) if cls is not IngestConfig else cls("src", "dst")
        if cls is IngestConfig:
            config = dataclasses.replace(config, **{name: value})
    except TextVAEError as err:
        assert isinstance(err, ValueError) and f"`{name}`" in str(err), err
        assert "\n" not in str(err)
        return
    kept = getattr(config, name)
    assert math.isfinite(kept), f"{cls.__name__}.{name}={value!r} was accepted as {kept!r}"
    if cls is ModelConfig:  # the model computes in float32: a larger number is inf there
        assert math.isfinite(float(np.float32(kept))), f"{name}={kept!r} is inf in float32"


@pytest.mark.parametrize("value", ["0", "5e-324", "1e308", "inf", "-inf", "nan"])
@pytest.mark.parametrize("flag", ["--learning-rate", "--epsilon-std", "--kl-warmup-epochs"])
def test_a_float_flag_at_its_extreme_is_a_usage_error_or_finite(flag, value, capsys):
    try:
        config = train_config_from_args([f"{flag}={value}"])  # = : '-inf' is a value
    except SystemExit as stop:
        assert stop.code == 2
        err = capsys.readouterr().err
        name = flag[2:].replace("-", "_")
        assert err.count("\n") == 1 and (name in err or flag in err), err
        return
    assert math.isfinite(getattr(config.model, flag[2:].replace("-", "_"), math.nan)) or (
        math.isfinite(getattr(config, flag[2:].replace("-", "_"), math.nan))
    )
