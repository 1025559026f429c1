"""textvae-sample at the extremes of its numeric arguments: every accepted value decodes words
(exit 0, no warning), every refused one is one line with exit 2 (issue 21).

Before: ``--temperature 5e-324`` divided log-probabilities into -inf everywhere, then -inf - -inf
gave NaN weights and every step chose padding: empty samples, exit 0, a RuntimeWarning only.
"""

from __future__ import annotations

import contextlib
import math

import pytest

from textvae.cli import EXIT_USER_ERROR, sample_main
from textvae.config import TrainConfig
from textvae.model.config import RECONSTRUCTION, SAMPLED
from textvae.model.vae import build_vae
from textvae.training.run import BEST, RunDir

#: Every float argument of textvae-sample (the others are integers): which values it refuses,
#: and the message.
FLOAT_ARGUMENTS = {
    "--temperature": (
        lambda x: not math.isfinite(x),
        "`temperature` must be a non-negative number",
    ),
    "--top-p": (lambda x: not 0 < x <= 1, "`top_p` must be a number in (0, 1]"),
}
EXTREMES = ("0", "5e-324", "1e-300", "1e308", "1.7976931348623157e308", "inf", "nan", "-0.0")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder textvae-sample can use: an untrained tiny model with a store's vocabulary
    (decoding needs no training)."""
    from textvae.data import StoreSpec, build_store_from_texts

    root = tmp_path_factory.mktemp("sample-edges")
    texts = {"train": ["a good film", "a bad plot", "great fun", "awful acting"] * 3}
    store = build_store_from_texts(root / "s.zarr", texts, StoreSpec(vocab_size=12, max_len=8))
    run = RunDir(root / "run")
    run.prepare()
    config = TrainConfig(vocab_size=12, max_len=8).replace(hidden=4, dense=4, latent=2)
    run.write_config(config, store.attrs)
    run.write_vocab(store.vocab.tokens)
    model = build_vae(store.vocab_size, 8, hidden=4, dense=4, latent=2, embedding_dim=4, seed=0)
    model.optimizer.build(model.trainable_variables)
    run.save_model(model, BEST)
    return str(run.path)


def _decoded(out: str) -> list[str]:
    """The decoded text of each printed line (after ``output:`` or ``K:``)."""
    lines = [line for line in out.splitlines() if not line.startswith("input:")]
    return [line.split(":", 1)[1].strip() for line in lines]


COMMANDS = {
    "reconstruct": ["reconstruct", "{run}", "a good film", "awful", "a plot", "the actor", "fun"],
    "prior": ["prior", "{run}", "--n", "10"],
    "interpolate": ["interpolate", "{run}", "a good film", "a bad plot", "--steps", "10"],
}
#: Lines each prints: enough that an untrained model, which may end a line at once, still
#: writes words somewhere (NaN weights end every line at once).
LINES = {"reconstruct": 5, "prior": 10, "interpolate": 10}


@pytest.mark.parametrize("flag", FLOAT_ARGUMENTS)
@pytest.mark.parametrize("value", EXTREMES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_float_argument_at_its_extremes(tiny_run, capsys, command, value, flag):
    argv = [a.format(run=tiny_run) for a in COMMANDS[command]]
    refuses, message = FLOAT_ARGUMENTS[flag]
    refused = refuses(float(value))
    with pytest.raises(SystemExit) if refused else contextlib.nullcontext() as stop:
        code = sample_main([*argv, flag, value, "--verbose", "0"])
    out, err = capsys.readouterr()
    if refused:  # a usage error, before any model is loaded
        assert stop.value.code == EXIT_USER_ERROR
        assert err.count("\n") == 1 and message in err, err
        return
    assert code == 0, err
    decoded = _decoded(out)
    # A line may end at once (the untrained model may choose the end first), but NaN weights
    # chose the end at every step of every line: no words at all.
    assert len(decoded) == LINES[command], out
    if not any(text.split() for text in decoded):
        # NaN weights ended every line at once. So may a tiny model that learned to end early,
        # but then its greedy decoding of the same lines ends at once too.
        assert sample_main([*argv, "--temperature", "0", "--verbose", "0"]) == 0
        greedy = _decoded(capsys.readouterr().out)
        assert not any(text.split() for text in greedy), (out, greedy)
    assert "<oov>" not in out and "<start>" not in out


@pytest.mark.parametrize("top_k", ["1", "11", "12", "1000", str(10**30)])
@pytest.mark.parametrize("temperature", ["5e-324", "1", "1e308"])
def test_top_k_beyond_the_vocabulary_still_decodes(tiny_run, capsys, top_k, temperature):
    argv = ["prior", tiny_run, "--n", "10", "--temperature", temperature, "--top-k", top_k]
    assert sample_main([*argv, "--verbose", "0"]) == 0
    decoded = _decoded(capsys.readouterr().out)
    assert len(decoded) == 10 and any(text.split() for text in decoded)


@pytest.mark.parametrize(
    ("command", "flags", "want"),
    [
        ("reconstruct", [], {**RECONSTRUCTION, "allow_oov": False}),
        ("prior", [], {**SAMPLED, "allow_oov": False}),
        ("interpolate", [], {**SAMPLED, "allow_oov": False}),
        ("prior", ["--temperature", "0"], {**SAMPLED, "temperature": 0.0, "allow_oov": False}),
        ("reconstruct", ["--top-p", "0.5", "--allow-oov"], {"top_p": 0.5, "allow_oov": True}),
    ],
    ids=["reconstruct", "prior", "interpolate", "prior-greedy", "reconstruct-flags"],
)
def test_each_command_decodes_as_its_default_unless_told(
    tiny_run, capsys, monkeypatch, command, flags, want
):
    import numpy as np

    from textvae.training import sample

    seen = []

    def recording_generate(model, z, **decoding):
        seen.append(decoding)
        return np.ones((len(z), 2), dtype=np.int32)

    monkeypatch.setattr(sample, "generate", recording_generate)
    argv = [a.format(run=tiny_run) for a in COMMANDS[command]]
    assert sample_main([*argv, *flags, "--verbose", "0"]) == 0
    assert len(seen) == 1
    assert {k: seen[0][k] for k in want} == want
