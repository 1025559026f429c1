"""The documentation site builds strictly, covers the public API, and the README stays a front
page.

``mkdocs build --strict`` fails on a broken link or anchor, a page missing from the navigation,
and (through ``docs/hooks.py``) a public name no reference page renders or a documented object
without a docstring. The hook's checks are tested here on small sources, so they can be seen to
fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("griffe") is None,
    reason='the docs extra is not installed (pip install -e ".[docs]")',
)


def _hooks():
    spec = importlib.util.spec_from_file_location("textvae_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_mkdocs
@pytest.mark.timeout(300)
def test_site_builds_strictly(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert done.returncode == 0, done.stderr[-6000:]
    for page in ("index.html", "guides/token-store/index.html", "reference/batching/index.html"):
        assert (tmp_path / page).is_file(), page
    reference = (tmp_path / "reference" / "batching" / "index.html").read_text(encoding="utf-8")
    assert "OneHotSequence" in reference and "window_chunks" in reference


@needs_mkdocs
def test_hook_names_an_object_without_a_docstring(tmp_path: Path):
    import griffe

    source = '''
class Documented:
    """A class."""

    def method(self):
        """A method."""

    def bare(self):
        pass

    def call(self, x):
        pass

    def _private(self):
        pass


def naked():
    pass
'''
    module = griffe.visit("sample", filepath=tmp_path / "sample.py", code=source)
    hooks = _hooks()
    assert hooks._undocumented(module["Documented"]) == ["sample.Documented.bare"]
    assert hooks._undocumented(module["naked"]) == ["sample.naked"]


@needs_mkdocs
def test_every_public_name_has_a_reference_page():
    """What the hook checks at the end of a build, here without building: the names of every
    face's ``__all__`` against the reference pages' ``:::`` lines."""
    import importlib

    hooks = _hooks()
    rendered = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        for match in hooks.DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            obj = hooks._lookup(match["path"])
            assert obj is not None, (page.name, match["path"])
            rendered.add(obj.name)
            if obj.is_module:
                rendered |= {n for n in obj.members if hooks._is_public(obj, n)}
    missing = {
        f"{face}.{name}"
        for face in hooks.FACES
        for name in importlib.import_module(face).__all__
        if name not in rendered and name not in hooks.VALUES
    }
    assert not missing, sorted(missing)


def test_readme_is_a_front_page():
    lines = README.splitlines()
    assert len(lines) <= 250, len(lines)
    # Dated lab notes belong to the CHANGELOG, not the front page.
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README), "a date in README.md"
    assert lines[0] == "# textvae"
    assert "textvae-train --quick --vocab 20000" in "\n".join(lines[:15])


def test_readme_links_to_pages_that_exist():
    for target in re.findall(r"\]\((docs/[^)#\s]+)", README):
        assert (ROOT / target).is_file(), target
