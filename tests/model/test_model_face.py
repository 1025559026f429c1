"""textvae.model's face: the old names it still resolves, what the wing imports.

Every face name resolving to its home: tests/training/test_training_face.py (both wings).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import textvae.model
from textvae.errors import TextVAEDeprecationWarning

MODEL_DIR = Path(textvae.model.__file__).parent


def test_the_names_of_the_one_module_textvae_model_was_are_on_its_face():
    names = {"ReconstructionLoss", "Sampling", "TextVAE", "build_vae", "load_model"}
    names |= {"bag_of_words_nll", "kl_divergence"}
    assert names <= set(textvae.model.__all__)


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("KLAnnealing", "textvae.training.callbacks"),
        ("active_units", "textvae.model.metrics"),
        ("token_accuracy", "textvae.model.metrics"),
    ],
)
def test_names_moved_out_of_textvae_model_still_resolve_with_a_warning(name, home):
    with pytest.warns(TextVAEDeprecationWarning, match=rf"textvae.model.{name} is deprecated"):
        old = getattr(textvae.model, name)
    assert old is getattr(importlib.import_module(home), name)


def test_registered_keras_names_are_those_saved_in_earlier_checkpoints():
    """``.keras`` files name classes by these: moving a module must not change them."""
    from textvae.model.labels import LabelledBinaryAccuracy, LabelledBinaryCrossentropy
    from textvae.model.layers import AlignToStore, DecoderInputs, MaskedMean
    from textvae.model.vae import ReconstructionLoss, Sampling, TextVAE

    classes = (TextVAE, Sampling, ReconstructionLoss, DecoderInputs, AlignToStore, MaskedMean)
    labelled = (LabelledBinaryCrossentropy, LabelledBinaryAccuracy)
    registered = {
        cls.__name__: keras.saving.get_registered_name(cls) for cls in (*classes, *labelled)
    }
    assert registered == {
        "TextVAE": "textvae>TextVAE",
        "Sampling": "textvae>Sampling",
        "ReconstructionLoss": "textvae>ReconstructionLoss",
        "DecoderInputs": "textvae>DecoderInputs",
        "AlignToStore": "textvae>AlignToStore",
        "MaskedMean": "textvae>MaskedMean",
        "LabelledBinaryCrossentropy": "textvae>LabelledBinaryCrossentropy",
        "LabelledBinaryAccuracy": "textvae>LabelledBinaryAccuracy",
    }


def test_model_config_imports_without_keras():
    """textvae.config imports textvae.model.config: the face must not pull Keras in with it."""
    code = "import sys, textvae.model.config, textvae.model; print('keras' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("path", sorted(MODEL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_model_modules_import_nothing_above_the_wing(path):
    above = ("textvae.config", "textvae.training", "textvae.cli")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert not name.startswith(above), f"{path.name} imports {name}"
