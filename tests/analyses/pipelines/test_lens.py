"""The latent-language job's folder: tables first, figures drawn from them, redrawn byte for byte."""

from __future__ import annotations

from functools import partial

import plotly.graph_objects as go

from analyses.pipelines.lens import run_languages, write_figures, write_outputs
from analyses.stats.prom_lambda import analyse
from probes.backend.store import ResultsStore
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_backend


def _no_browser(*args, **kwargs):
    raise RuntimeError("no browser for kaleido in this test")


def test_the_folder_figures_are_drawn_from_its_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(go.Figure, "write_image", _no_browser)  # HTML only: a PNG export starts a browser
    backend = tiny_backend()
    table = run_languages(backend, ["fr", "de"], limit=4, store=ResultsStore(tmp_path / "store"), progress=False)
    out = tmp_path / "lens"
    write_outputs(analyse(table, n_layers=backend.n_layers), out, model="tiny")
    assert {p.stem for p in out.glob("*.html")} == {"lambda", "lens_fr", "lens_de"}
    assert "tiny: logit lens, target fr" in (out / "lens_fr.html").read_text()
    assert_redraws_identically(out, partial(write_figures, model="tiny"), tmp_path)
