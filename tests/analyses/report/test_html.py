"""The diagnosis report: its text escaped, its tables beside it, plotly.js inlined or shared by
the folder's pages, byte-identical re-renders, and every figure drawn in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from analyses.figures.latent import lambda_figure, lens_figure
from analyses.report import SectionResult, Verdict
from analyses.report.html import render_report, write_index
from analyses.report.sections import Page
from analyses.stats.latent import layer_curves
from analyses.stats.prom_lambda import lambda_table
from tests.analyses.report.browser import draw, figures_in, needs_chromium


def _lens_table() -> pd.DataFrame:
    rows = [
        {
            "lang": "sw",
            "latent": "en",
            "concept": f"c{i}",
            "layer": layer,
            "p_en": 0.1 * (layer == 2) + 0.01 * i,
            "p_target": 0.2 * (layer == 3),
            "entropy_bits": 5.0 - layer,
        }
        for i in range(5)
        for layer in range(4)
    ]
    return pd.DataFrame(rows)


def _report(tmp_path, provenance=None, lang="sw", plotlyjs="inline"):
    table = _lens_table()
    section = SectionResult(
        "Latent language",
        [Verdict("Does it pivot?", "yes", "P(en) peaks at layer 2", "CI [0.1, 0.2]")],
        [lens_figure(layer_curves(table), "sw"), lambda_figure(lambda_table(table, layer=2))],
        {"lambda": lambda_table(table, layer=2)},
        pages=[Page("explore.html", "an example", lens_figure(layer_curves(table), "sw"), "an explorer page")],
    )
    per_model = {"model-a": [section], "model-b": [section]}
    return render_report(lang, per_model, tmp_path, provenance=provenance, plotlyjs=plotlyjs)


EXTERNAL_SCRIPT = re.compile(r"<script[^>]+src=")


def test_report_is_self_contained_and_writes_its_tables(tmp_path):
    page = _report(tmp_path).read_text()
    assert not EXTERNAL_SCRIPT.search(page) and get_plotlyjs() in page
    assert not (tmp_path / "plotly.min.js").exists()
    linked = (tmp_path / "sw" / "explore.html").read_text()
    assert not EXTERNAL_SCRIPT.search(linked) and "<title>an explorer page</title>" in linked
    assert (tmp_path / "sw" / "model-a__lambda.csv").is_file() and (tmp_path / "sw" / "model-b__lambda.csv").is_file()


def test_directory_pages_share_one_plotlyjs_written_once(tmp_path):
    first = _report(tmp_path, lang="sw", plotlyjs="directory")
    bundle = tmp_path / "plotly.min.js"
    assert bundle.read_text() == get_plotlyjs()
    written = bundle.stat()
    second = _report(tmp_path, lang="fr", plotlyjs="directory")
    assert (bundle.stat().st_ino, bundle.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    for path in (first, second):
        page = path.read_text()
        assert EXTERNAL_SCRIPT.findall(page) == ["<script src="] and "<script src='plotly.min.js'></script>" in page
        assert get_plotlyjs()[:1000] not in page and len(page) < len(get_plotlyjs()) / 10
    linked = (tmp_path / "sw" / "explore.html").read_text()
    assert len(EXTERNAL_SCRIPT.findall(linked)) == 1 and 'src="../plotly.min.js"' in linked
    assert len(linked) < len(get_plotlyjs()) / 10


def test_hostile_text_is_escaped_never_raw(tmp_path):
    """Every string of the page is escaped: verdicts, titles, notes, links, names, provenance."""
    attack = "<script>alert(1)</script>"
    lang, model = "x'y&z", "o'neil & co"
    section = SectionResult(
        f"title {attack}",
        [Verdict(f"question {attack}", attack, f"evidence {attack}", f"uncertainty {attack}")],
        notes=[f"note {attack}"],
        tables={"shown": pd.DataFrame({"cell": [attack]})},
        shown=["shown"],
        pages=[Page("ex'1.html", f"label {attack}", go.Figure(), "page")],
    )
    provenance = {"models": {model: {"backend": attack, "model_source": "gguf 'q4' & more"}}, "code": {"lib": attack}}
    page = render_report(lang, {model: [section]}, tmp_path, provenance=provenance).read_text()
    index = write_index(tmp_path).read_text()
    text = page.split("</script></head>", 1)[1]  # after the inlined plotly.js
    assert "<script" not in text and "alert(1)</script>" not in text and "alert(1)</script>" not in index
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # title, 4 verdict cells, note, shown table, link label, provenance backend and code, summary question and answer
    assert text.count(escaped) == 12
    assert index.count(escaped) == 3  # the question, answer and uncertainty in the index's table of every verdict
    assert "<title>pivotlens diagnosis: x&#39;y&amp;z</title>" in page and lang not in page
    assert (
        "<h2>o&#39;neil &amp; co</h2>" in text
        and "<p class='meta'>o&#39;neil &amp; co: gguf &#39;q4&#39; &amp; more;" in text
    )
    assert model not in page and model not in index
    assert "<a href='x&#39;y&amp;z/ex&#39;1.html'>" in text  # a quote cannot end the attribute
    assert "<a href='report_x&#39;y&amp;z.html'>x&#39;y&amp;z</a>" in index


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_tables_render_byte_identical_pages(tmp_path):
    """No clock, no random figure id, no render-time commit on the page: a re-render changes no file."""
    provenance = {"models": {"model-a": {"backend": "nnsight"}}, "code": {"pivotlens": "0", "git_commit": "abc123"}}
    first = _files(_report(tmp_path / "first", provenance).parent)
    second = _files(_report(tmp_path / "second", provenance).parent)
    assert first.keys() == second.keys() and "report_sw.html" in first and len(first) == 6
    assert [name for name in first if first[name] != second[name]] == []
    page = first["report_sw.html"].decode()
    assert "abc123" not in page and "pivotlens 0" in page and "pivotlens diagnosis report. Tables" in page


@needs_chromium
@pytest.mark.parametrize("plotlyjs", ["inline", "directory"])
def test_every_figure_draws_in_headless_chromium(tmp_path, plotlyjs):
    path = _report(tmp_path, plotlyjs=plotlyjs)
    assert figures_in(path) == 4
    drawn = draw(path, tmp_path / "profile")
    assert drawn.figures == 4, f"{drawn.figures} of 4 figures drew"
    assert drawn.empty == 0, f"{drawn.empty} figures drew no data"
    assert not drawn.errors, drawn.errors
