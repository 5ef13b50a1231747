"""``pivotlens exit``: bad input is refused early; a small run writes every table and figure."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.pipelines.exit import write_figures
from probes.backend.errors import DataFormatError, PivotlensError
from probes.inputs.tasks import TASKS
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_tokenizer
from tests.probes.backend.test_architecture_matrix import reference

runner = CliRunner()


def test_bad_requests_fail_before_loading_a_model(tmp_path):
    result = runner.invoke(app, ["--out", str(tmp_path), "exit", "--task", "poetry"])
    assert isinstance(result.exception, DataFormatError) and "unknown task 'poetry'" in str(result.exception)
    result = runner.invoke(app, ["--out", str(tmp_path), "exit", "--transfer-from", str(tmp_path / "nowhere")])
    assert isinstance(result.exception, PivotlensError) and "--transfer-from" in str(result.exception)


@pytest.mark.slow
def test_exit_command_writes_the_tables_and_figures(tmp_path):
    out = tmp_path / "out"
    args = [
        "--model",
        "smollm2-135m",
        "--out",
        str(out),
        "--results",
        str(tmp_path / "store"),
        "exit",
        "--task",
        "sentiment,mcqa",
        "--lang",
        "en,fr",
        "--n",
        "8",
        "--shots",
        "1",
    ]
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


def _no_browser(*args, **kwargs):
    raise RuntimeError("no browser for kaleido in this test")


@pytest.mark.parametrize("arch", ["gpt2", "bloom", "falcon", "mixtral"])
def test_exit_completes_on_plain_mlp_fused_qkv_and_moe_models(tmp_path, monkeypatch, arch):
    """GPT-2 (config aliases n_embd, n_layer), BLOOM and Falcon (fused QKV, plain MLP), Mixtral
    (routed experts): the lens work and every FLOPs table, from a tiny random model folder
    (figures as HTML only: the PNG export through a browser is not what this test is about)."""
    monkeypatch.setattr(go.Figure, "write_image", _no_browser)
    tasks = ("sentiment",)
    answers = tuple(word for task in tasks for word in TASKS[task].answers.values())
    tokenizer, model = tiny_tokenizer(answers), reference(arch, answers)
    folder, out = tmp_path / arch, tmp_path / "out"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    args = [
        "--model",
        str(folder),
        "--out",
        str(out),
        "--results",
        str(tmp_path / "store"),
        "exit",
        "--task",
        ",".join(tasks),
        "--lang",
        "en",
        "--n",
        "6",
        "--shots",
        "0",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    generalisation = pd.read_csv(out / "exit_generalisation.csv")
    assert generalisation["flops_ratio"].notna().all() and "flops_note" not in generalisation
    shape = json.loads((out / "exit_flops_shape.json").read_text())
    assert shape["n_layers"] == 2 and shape["hidden"] == 64
    assert (shape["n_experts"], shape["active_experts"]) == ((4, 2) if arch == "mixtral" else (0, 1))
    assert shape["mlp_matrices"] == (3 if arch == "mixtral" else 2)
    assert_redraws_identically(out, write_figures, tmp_path)
