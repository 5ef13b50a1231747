"""``pivotlens exit``: bad input is refused early; a small run writes every table and figure."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from probes.backend.errors import DataFormatError, PivotlensError

runner = CliRunner()


def test_bad_requests_fail_before_loading_a_model(tmp_path):
    result = runner.invoke(app, ["--out", str(tmp_path), "exit", "--task", "poetry"])
    assert isinstance(result.exception, DataFormatError) and "unknown task 'poetry'" in str(result.exception)
    result = runner.invoke(app, ["--out", str(tmp_path), "exit", "--transfer-from", str(tmp_path / "nowhere")])
    assert isinstance(result.exception, PivotlensError) and "--transfer-from" in str(result.exception)


@pytest.mark.slow
def test_exit_command_writes_the_tables_and_figures(tmp_path):
    out = tmp_path / "out"
    args = ["--model", "smollm2-135m", "--out", str(out), "--results", str(tmp_path / "store"),
            "exit", "--task", "sentiment,mcqa", "--lang", "en,fr", "--n", "8", "--shots", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    items = pd.read_parquet(out / "exit_items.parquet")
    assert {"task", "lang", "item", "layer", "correct", "gap", "top_prob"} <= set(items.columns)
    assert len(items) == 2 * 2 * 8 * 30
    layers = pd.read_csv(out / "exit_layers.csv")
    assert {"task", "lang", "layer", "accuracy"} <= set(layers.columns) and len(layers) == 2 * 2 * 30
    strategies = pd.read_csv(out / "exit_strategies.csv")
    assert {"intra-task", "inter-task", "inter-lang"} <= set(strategies["setting"])
    for name in ("generalisation", "classifiers", "static", "features"):
        assert not pd.read_csv(out / f"exit_{name}.csv").empty
    assert (out / "figures" / "accuracy_by_layer.html").is_file()
    assert (out / "figures" / "tradeoff_full.html").is_file()
