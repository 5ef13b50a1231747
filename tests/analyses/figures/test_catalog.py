"""The figure catalog: figures regenerate from stored tables, the manifest ties each figure to its
paper and data file (with its hash), and missing data is reported with the command that makes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import plotly.graph_objects as go

from analyses.figures.catalog import CATALOG, paper_figure, regenerate

RESULTS = Path(__file__).resolve().parents[3] / "results"


def test_regenerates_from_a_stored_table_and_names_what_is_missing(tmp_path):
    root = tmp_path / "results"
    source = RESULTS / "interference" / "smollm2-135m" / "summary_layer.csv"
    (root / "interference" / "smollm2-135m").mkdir(parents=True)
    shutil.copy(source, root / "interference" / "smollm2-135m" / "summary_layer.csv")
    manifest = regenerate(
        root, "smollm2-135m", tmp_path / "figs", names=["interference", "prom_fig3", "lens"], compute=False, formats=()
    )
    ok = manifest[manifest["status"] == "ok"].iloc[0]
    assert ok["family"] == "interference" and ok["paper"] == CATALOG["interference"].paper
    assert ok["data_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    html = (tmp_path / "figs" / ok["files"]).read_text()
    assert "cos" in html and "plotly" in html
    status = dict(zip(manifest["family"], manifest["status"]))
    assert status["prom_fig3"].startswith("missing: needs fine-tuning")
    assert (
        status["lens"].startswith("missing: pivotlens --model smollm2-135m") and "lambda --langs all" in status["lens"]
    )
    assert (tmp_path / "figs" / "manifest.json").is_file()


def test_a_user_registers_a_figure_without_editing_the_catalog(tmp_path):
    table = tmp_path / "mine" / "m" / "t.csv"
    table.parent.mkdir(parents=True)
    table.write_text("x,y\n0,1\n1,3\n")

    @paper_figure("mine", paper="My paper, Fig. 1", data="mine/{model}/t.csv", command=None)
    def _mine(path, model):
        import pandas as pd

        frame = pd.read_csv(path)
        return {"line": go.Figure(go.Scatter(x=frame["x"], y=frame["y"]))}

    try:
        manifest = regenerate(tmp_path, "m", tmp_path / "figs", names=["mine"], compute=False, formats=())
        assert list(manifest["figure"]) == ["line"] and (tmp_path / "figs" / "mine__line.html").is_file()
    finally:
        CATALOG.pop("mine")
