"""The diagnosis report renders in headless Chromium: every figure draws, no console errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.figures.latent import lambda_figure, lens_figure
from analyses.report import SectionResult, Verdict
from analyses.report.html import render_report
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


def _report(tmp_path, provenance=None):
    table = _lens_table()
    section = SectionResult(
        "Latent language",
        [Verdict("Does it pivot?", "yes", "P(en) peaks at layer 2", "CI [0.1, 0.2]")],
        [lens_figure(layer_curves(table), "sw"), lambda_figure(lambda_table(table, layer=2))],
        {"lambda": lambda_table(table, layer=2)},
    )
    return render_report("sw", {"model-a": [section], "model-b": [section]}, tmp_path, provenance=provenance)


def test_report_is_self_contained_and_writes_its_tables(tmp_path):
    page = _report(tmp_path).read_text()
    assert "<script src=" not in page and "cdn" not in page.lower().split("plotly.js v")[0][-200:]
    assert (tmp_path / "sw" / "model-a__lambda.csv").is_file() and (tmp_path / "sw" / "model-b__lambda.csv").is_file()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_tables_render_byte_identical_pages(tmp_path):
    """No clock, no random figure id, no render-time commit on the page: a re-render changes no file."""
    provenance = {"models": {"model-a": {"backend": "nnsight"}}, "code": {"pivotlens": "0", "git_commit": "abc123"}}
    first = _files(_report(tmp_path / "first", provenance).parent)
    second = _files(_report(tmp_path / "second", provenance).parent)
    assert first.keys() == second.keys() and "report_sw.html" in first and len(first) == 5
    assert [name for name in first if first[name] != second[name]] == []
    page = first["report_sw.html"].decode()
    assert "abc123" not in page and "pivotlens 0" in page and "pivotlens diagnosis report. Tables" in page


@needs_chromium
def test_every_figure_draws_in_headless_chromium(tmp_path):
    path = _report(tmp_path)
    assert figures_in(path) == 4
    drawn = draw(path, tmp_path / "profile")
    assert drawn.figures == 4, f"{drawn.figures} of 4 figures drew"
    assert drawn.empty == 0, f"{drawn.empty} figures drew no data"
    assert not drawn.errors, drawn.errors
