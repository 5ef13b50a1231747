"""The documentation: the strict mkdocs build, the docstring-role links it checks, and that no
docstring or comment cites the outside spec instead of the paper and the docs."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "docs" / "_ext" / "sphinx_roles.py"
# "spec 4.1", "Spec 3.5:", "spec section 5", "spec 6b", "spec (a)", "the spec's default"
SPEC_CITATION = re.compile(r"\bspecs?\s+(?:section\s+)?[0-9(]|\bthe spec\b|\bspec's\b", re.IGNORECASE)


def test_no_source_cites_the_outside_spec():
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("probes", "analyses")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SPEC_CITATION.search(line)
    ]
    assert not hits, "cite the paper and docs/methods/<page>.md instead:\n" + "\n".join(hits)


def test_the_citation_pattern_catches_every_form_and_spares_code():
    for cited in (
        "(Wendler et al. 2024, spec 1.3)",
        "Spec 3.5: user turns",
        "spec section 5",
        "spec 6b",
        "(spec (a))",
        "the spec's default",
        "specs 4.1-4.2",
    ):
        assert SPEC_CITATION.search(cited), cited
    for code in (
        "spec = importlib.util.find_spec(name)",
        "def open_checkpoint(spec: str | Path)",
        "spec.labels",
        "for spec in specs:",
        "resolve_model(spec)",
    ):
        assert not SPEC_CITATION.search(code), code


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_roles_become_links_and_a_missing_target_is_a_warning(tmp_path, caplog):
    _write(
        tmp_path,
        {
            "docs_pkg_a/__init__.py": '"""Package A."""\n',
            "docs_pkg_a/words.py": '''\
            """Words. See :func:`load` and :class:`~docs_pkg_b.stats.Table`, and :func:`docs_pkg_a.nowhere`."""


            def load():
                """Load the words."""


            def _private():
                """Hidden."""
            ''',
            "docs_pkg_b/__init__.py": '"""Package B."""\n',
            "docs_pkg_b/stats.py": '''\
            """Statistics over :func:`docs_pkg_a.words.load` tables; :func:`docs_pkg_a.words._private` is private
            and :func:`os.path.join` is not ours."""


            class Table:
                """A table."""
            ''',
        },
    )
    extensions = griffe.load_extensions({f"{EXTENSION}:SphinxRoles": {"packages": ["docs_pkg_a", "docs_pkg_b"]}})
    with caplog.at_level(logging.WARNING):
        loader = griffe.GriffeLoader(search_paths=[tmp_path], extensions=extensions)
        words = loader.load("docs_pkg_a").get_member("words")
    stats = loader.modules_collection["docs_pkg_b"].get_member("stats")
    assert words.docstring.value.startswith(
        "Words. See [`load`][docs_pkg_a.words.load] and [`Table`][docs_pkg_b.stats.Table]"
    )
    assert "`docs_pkg_a.nowhere`" in words.docstring.value and "][docs_pkg_a.nowhere]" not in words.docstring.value
    assert "[`docs_pkg_a.words.load`][docs_pkg_a.words.load]" in stats.docstring.value
    assert "`docs_pkg_a.words._private` is private" in stats.docstring.value  # private: plain code, not a link
    assert "`os.path.join` is not ours" in stats.docstring.value
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["docs_pkg_a.words: broken reference 'docs_pkg_a.nowhere' in its docstring"]


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path):
    """``mkdocs build --strict``: every page, every docstring, every cross-reference (about 20 s)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "methods" / "prom" / "index.html").is_file()
    reference = (tmp_path / "site" / "reference" / "probes" / "index.html").read_text(encoding="utf-8")
    assert 'id="probes.lens.run_lens"' in reference  # the API reference renders submodules recursively
