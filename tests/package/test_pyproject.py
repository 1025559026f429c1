"""pyproject.toml as a user installs it: a core without any Keras backend or plotting, every
extra that an error message names, the licence in the wheel, the Python versions that resolve.

Read with tomllib (no build, no network): what pip installs is exactly these tables.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from textvae._startup import BACKEND_EXTRAS

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
CORE = {"keras", "numpy", "numba", "zarr"}
#: Packages that must never be in the core install: backends and what only one command uses.
OPTIONAL = {
    "tensorflow",
    "tensorflow-cpu",
    "jax",
    "jaxlib",
    "torch",
    "matplotlib",
    "s3fs",
    "dask",
    "distributed",
}
#: ``import_extra("module", "extra", ...)`` and its siblings: the extra is the second argument.
_HELPER_CALL = r'(?:import|require|missing)_extra\(\s*"[^"]+",\s*"([^"]+)"'


def _name(requirement: str) -> str:
    """The distribution a PEP 508 requirement names, normalised (``moto[server]>=5`` -> moto)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _extras_named_in(text: str) -> set[str]:
    """Extras a message or a command line names: ``textvae[a,b]``, ``pip install ".[a]"`` and
    ``import_extra("module", "extra", ...)`` / ``require_extra(...)``."""
    named = set()
    for group in re.findall(r"(?:textvae|(?<=[\"'\s])\.)\[([A-Za-z0-9_,\- ]+)\]", text):
        named.update(e.strip() for e in group.split(","))
    named.update(re.findall(_HELPER_CALL, text))
    return named


def test_core_dependencies_are_keras_numpy_numba_zarr_only():
    core = {_name(r) for r in PROJECT["dependencies"]}
    assert core == CORE
    assert not core & OPTIONAL


@pytest.mark.parametrize(
    ("extra", "package"),
    [
        ("tensorflow", "tensorflow"),
        ("jax", "jax"),
        ("torch", "torch"),
        ("plot", "matplotlib"),
        ("s3", "s3fs"),
        ("dask", "dask"),
    ],
)
def test_each_optional_package_has_its_extra(extra: str, package: str):
    assert package in {_name(r) for r in PROJECT["optional-dependencies"][extra]}


def test_every_extra_a_message_names_exists():
    extras = set(PROJECT["optional-dependencies"])
    sources = [*sorted((ROOT / "textvae").rglob("*.py")), ROOT / "README.md", ROOT / ".ci" / "run"]
    named = {e for _, e in BACKEND_EXTRAS.values()}
    for path in sources:
        found = _extras_named_in(path.read_text(encoding="utf-8"))
        assert found <= extras, (path.relative_to(ROOT), found - extras)
        named |= found
    assert {"tensorflow", "jax", "torch", "test"} <= named


def test_test_extra_installs_every_backend_but_torch():
    """CI runs ``pip install -e ".[test]"``: TensorFlow, JAX, matplotlib, s3fs and Dask come with
    it, each as its extra asks for it; torch does not (PyPI's default torch wheel is several GB
    of CUDA libraries)."""
    extras = PROJECT["optional-dependencies"]
    test = extras["test"]
    for extra in ("tensorflow", "jax", "plot", "s3", "dask"):
        assert set(extras[extra]) <= set(test), extra
    installed = {_name(r) for r in test}
    assert {"tensorflow", "jax", "matplotlib", "s3fs", "moto", "pytest-xdist"} <= installed
    assert "torch" not in installed
    assert "textvae" not in installed  # no self-reference (see the comment in pyproject.toml)


def test_requires_python_is_at_least_3_11():
    """zarr 3 and Keras 3.15 need Python 3.11: a lower floor lets pip try and fail to resolve."""
    match = re.fullmatch(r">=\s*3\.(\d+)", PROJECT["requires-python"])
    assert match and int(match.group(1)) >= 11
    classified = {
        int(c.rsplit(".", 1)[1])
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert classified and min(classified) == int(match.group(1))
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{match.group(1)}"


def test_license_file_exists_and_ships():
    assert PROJECT["license"] == "MIT"
    assert "LICENSE" in PROJECT["license-files"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the textvae developers" in text
    # PEP 639: the SPDX expression replaces the "License ::" classifiers (setuptools >= 77
    # refuses a project that has both).
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]


def test_version_is_semver_and_in_the_changelog():
    version = PROJECT["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


def test_tests_in_subfolders_are_collected():
    """The README's test command names no path: pytest finds tests/<wing>/ through testpaths."""
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests", "benchmarks"]


def test_readme_test_command_is_what_ci_runs():
    """The README's second command and .ci/run's last line are the same test command, and CI
    installs from this project's own files."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    ci = [line for line in ci if line and not line.startswith("#")]
    assert 'python -m pip install --quiet -e ".[test]"' in ci
    command = ci[-1]
    assert command.startswith("python -m pytest ")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert command in first_block
