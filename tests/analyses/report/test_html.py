"""The diagnosis report renders in headless Chromium: every figure draws, no console errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

from analyses.figures.latent import lambda_figure, lens_figure
from analyses.latent import layer_curves
from analyses.prom_lambda import lambda_table
from analyses.report import SectionResult, Verdict
from analyses.report.html import render_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _lens_table() -> pd.DataFrame:
    rows = [
        {"lang": "sw", "latent": "en", "concept": f"c{i}", "layer": layer, "p_en": 0.1 * (layer == 2) + 0.01 * i,
         "p_target": 0.2 * (layer == 3), "entropy_bits": 5.0 - layer}
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
    return render_report("sw", {"model-a": [section], "model-b": [section]}, tmp_path), 4


def test_report_is_self_contained_and_writes_its_tables(tmp_path):
    path, _ = _report(tmp_path)
    page = path.read_text()
    assert "<script src=" not in page and "cdn" not in page.lower().split("plotly.js v")[0][-200:]
    assert (tmp_path / "sw" / "model-a__lambda.csv").is_file() and (tmp_path / "sw" / "model-b__lambda.csv").is_file()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no Chromium on this machine (make setup installs it)")
def test_every_figure_draws_in_headless_chromium(tmp_path):
    assert CHROMIUM, "Chromium is missing: `make setup` installs Debian's chromium package"
    path, n_figures = _report(tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", "--dump-dom"]
    done = subprocess.run([CHROMIUM, *flags, path.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    dom = done.stdout
    plots = dom.count('class="plot-container plotly"')
    assert plots == n_figures, f"{plots} of {n_figures} figures drew"
    # every drawn figure has data traces (no empty plots)
    assert len(re.findall(r'class="trace ', dom)) + dom.count('class="hm"') >= n_figures
    errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and any(w in line for w in ("Error", "Uncaught", "WARN"))]
    assert not errors, errors
