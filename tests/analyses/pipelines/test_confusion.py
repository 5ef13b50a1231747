"""The confusion job's folder: tables first, figures drawn from them, redrawn byte for byte."""

from __future__ import annotations

import plotly.graph_objects as go

from analyses.pipelines.confusion import analyse, write_figures, write_outputs, write_sweep
from tests.analyses.redraw import assert_redraws_identically
from tests.analyses.stats.test_confusion_points import _steps


def _no_browser(*args, **kwargs):
    raise RuntimeError("no browser for kaleido in this test")


def test_the_folder_figures_are_drawn_from_its_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(go.Figure, "write_image", _no_browser)  # HTML only: a PNG export starts a browser
    results = analyse(_steps().assign(input="the prompt"), n_boot=50)
    out = tmp_path / "confusion"
    write_outputs(results, out)
    assert (
        {p.stem for p in out.glob("*.html")}
        == set(results.figures)
        == {
            "pass_rates",
            "cp_entropy_bits",
            "cp_nucleus_size",
        }
    )
    setting = {"factor": "temperature", "value": 0.3, "temperature": 0.3, "top_p": 0.75, "shots": 0}
    write_sweep(results.metrics.assign(**setting), out)  # one setting of run_sweep's table
    assert (out / "sweep.html").is_file() and (out / "pass_rates.html").is_file()
    assert_redraws_identically(out, write_figures, tmp_path)
