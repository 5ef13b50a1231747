"""The figure catalog: figures regenerate from stored tables, the manifest ties each figure to its
paper and data file (with its hash), and missing data is reported with the command that makes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import plotly.graph_objects as go

from analyses.figures.catalog import FIGURES, regenerate, register_figures
from probes.registry import REGISTRY

RESULTS = Path(__file__).resolve().parents[3] / "results"


def test_regenerates_from_a_stored_table_and_names_what_is_missing(tmp_path):
    root = tmp_path / "results"
    source = RESULTS / "interference" / "smollm2-135m" / "summary_layer.csv"
    (root / "interference" / "smollm2-135m").mkdir(parents=True)
    shutil.copy(source, root / "interference" / "smollm2-135m" / "summary_layer.csv")
    manifest = regenerate(
        root, "smollm2-135m", tmp_path / "figs", names=["interference", "prom_fig3", "lens"], formats=()
    )
    ok = manifest[manifest["status"] == "ok"].iloc[0]
    assert ok["family"] == "interference" and ok["paper"] == FIGURES.get("interference").paper
    assert ok["data_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    html = (tmp_path / "figs" / ok["files"]).read_text()
    assert "cos" in html and "plotly" in html
    status = dict(zip(manifest["family"], manifest["status"]))
    assert status["prom_fig3"].startswith("missing: needs fine-tuning")
    assert (
        status["lens"].startswith("missing: pivotlens --model smollm2-135m") and "lambda --langs all" in status["lens"]
    )
    assert (tmp_path / "figs" / "manifest.json").is_file()


def test_a_user_registers_a_figure_without_editing_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "figures", dict(FIGURES.parts()))  # the registration ends with the test
    table = tmp_path / "mine" / "m" / "t.csv"
    table.parent.mkdir(parents=True)
    table.write_text("x,y\n0,1\n1,3\n")

    @register_figures("mine", paper="My paper, Fig. 1", data="mine/{model}/t.csv", command=None)
    def _mine(path, model):
        import pandas as pd

        frame = pd.read_csv(path)
        return {"line": go.Figure(go.Scatter(x=frame["x"], y=frame["y"]))}

    manifest = regenerate(tmp_path, "m", tmp_path / "figs", names=["mine"], formats=())
    assert list(manifest["figure"]) == ["line"] and (tmp_path / "figs" / "mine__line.html").is_file()
    assert FIGURES.get("mine").family == "mine"


def test_missing_data_is_computed_by_the_family_command_given_to_regenerate(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "figures", dict(FIGURES.parts()))
    calls = []

    @register_figures("mine", paper="Mine", data="mine/{model}/t.csv", command="--out {root}/mine/{model} mine -n 2")
    def _mine(path, model):
        return {"bar": go.Figure(go.Bar(y=[float(path.read_text())]))}

    def compute(args: list[str]) -> None:  # what `pivotlens figures` runs in its own process
        calls.append(args)
        (tmp_path / "mine" / "m").mkdir(parents=True)
        (tmp_path / "mine" / "m" / "t.csv").write_text("2.5")

    manifest = regenerate(tmp_path, "m", tmp_path / "figs", names=["mine"], compute=compute, formats=())
    assert calls == [["--model", "m", "--out", f"{tmp_path}/mine/m", "mine", "-n", "2"]]
    assert list(manifest["status"]) == ["ok"]
