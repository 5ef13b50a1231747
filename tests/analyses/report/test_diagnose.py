"""``pivotlens diagnose`` end to end on a real embedded model: every section answers, the page and
its tables are written, and a re-run reuses the results store instead of computing again."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from analyses.cli import app


@pytest.mark.slow
def test_diagnose_writes_every_section_and_reuses_the_store(tmp_path):
    args = ["--model", "smollm2-135m", "--out", str(tmp_path / "out"), "--results", str(tmp_path / "store"),
            "diagnose", "--lang", "fr", "--quick"]
    start = time.perf_counter()
    first = CliRunner().invoke(app, args)
    first_seconds = time.perf_counter() - start
    assert first.exit_code == 0, first.output
    page = (tmp_path / "out" / "report_fr.html").read_text()
    for title in ("Latent language", "exit accuracy", "Gradient interference", "Language confusion"):
        assert title in page
    tables = {p.name for p in (tmp_path / "out" / "fr").glob("*.csv")}
    assert {"smollm2-135m__lambda.csv", "smollm2-135m__exit_layers.csv", "smollm2-135m__interference_layers.csv",
            "smollm2-135m__confusion_metrics.csv"} <= tables
    stored = sorted(p.name for p in (tmp_path / "store").rglob("*.parquet"))
    start = time.perf_counter()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in (tmp_path / "store").rglob("*.parquet")) == stored  # nothing new computed
    assert time.perf_counter() - start < first_seconds / 2
