"""The diagnosis report renders in headless Chromium: every figure draws, no console errors."""

from __future__ import annotations

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


def _report(tmp_path):
    table = _lens_table()
    section = SectionResult(
        "Latent language",
        [Verdict("Does it pivot?", "yes", "P(en) peaks at layer 2", "CI [0.1, 0.2]")],
        [lens_figure(layer_curves(table), "sw"), lambda_figure(lambda_table(table, layer=2))],
        {"lambda": lambda_table(table, layer=2)},
    )
    return render_report("sw", {"model-a": [section], "model-b": [section]}, tmp_path)


def test_report_is_self_contained_and_writes_its_tables(tmp_path):
    page = _report(tmp_path).read_text()
    assert "<script src=" not in page and "cdn" not in page.lower().split("plotly.js v")[0][-200:]
    assert (tmp_path / "sw" / "model-a__lambda.csv").is_file() and (tmp_path / "sw" / "model-b__lambda.csv").is_file()


@needs_chromium
def test_every_figure_draws_in_headless_chromium(tmp_path):
    path = _report(tmp_path)
    assert figures_in(path) == 4
    drawn = draw(path, tmp_path / "profile")
    assert drawn.figures == 4, f"{drawn.figures} of 4 figures drew"
    assert drawn.empty == 0, f"{drawn.empty} figures drew no data"
    assert not drawn.errors, drawn.errors
