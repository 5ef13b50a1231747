"""``pivotlens diagnose`` end to end on a real embedded model: every section answers, the page and
its tables are written, every figure of the real page draws in headless Chromium, and a re-run
reuses the results store instead of computing again and renders byte-identical files."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from tests.analyses.report.browser import draw, figures_in, needs_chromium


def _files(folder) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "timings.csv"
    }


@pytest.mark.slow
@needs_chromium
def test_diagnose_writes_every_section_and_reuses_the_store(tmp_path):
    args = [
        "--model",
        "smollm2-135m",
        "--out",
        str(tmp_path / "out"),
        "--results",
        str(tmp_path / "store"),
        "diagnose",
        "--lang",
        "fr",
        "--quick",
    ]
    start = time.perf_counter()
    first = CliRunner().invoke(app, args)
    first_seconds = time.perf_counter() - start
    assert first.exit_code == 0, first.output
    path = tmp_path / "out" / "report_fr.html"
    page = path.read_text()
    for title in (
        "Latent language",
        "exit accuracy",
        "Gradient interference",
        "linguistic regions",
        "Language confusion",
    ):
        assert title in page
    tables = {p.name for p in (tmp_path / "out" / "fr").glob("*.csv")}
    assert {
        "smollm2-135m__lambda.csv",
        "smollm2-135m__exit_layers.csv",
        "smollm2-135m__interference_layers.csv",
        "smollm2-135m__region_layers.csv",
        "smollm2-135m__confusion_metrics.csv",
        "verdicts.csv",
        "timings.csv",
    } <= tables
    assert set(pd.read_csv(tmp_path / "out" / "fr" / "verdicts.csv")["section"].str[:5]) >= {
        "Laten",
        "Layer",
        "Gradi",
        "Which",
        "Langu",
    }
    n_figures = figures_in(path)
    assert n_figures >= 5  # at least one per section
    drawn = draw(path, tmp_path / "profile")
    assert (drawn.figures, drawn.empty, drawn.errors) == (n_figures, 0, [])

    stored = sorted(p.name for p in (tmp_path / "store").rglob("*.parquet"))
    rendered = _files(tmp_path / "out")
    start = time.perf_counter()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    again = _files(tmp_path / "out")  # re-rendered from the stored tables: byte-identical, timings aside
    assert rendered.keys() == again.keys() and "report_fr.html" in again
    assert [name for name in rendered if rendered[name] != again[name]] == []
    assert sorted(p.name for p in (tmp_path / "store").rglob("*.parquet")) == stored  # nothing new computed
    assert not pd.read_csv(tmp_path / "out" / "fr" / "timings.csv")["computed"].any()
    assert time.perf_counter() - start < first_seconds / 2
