"""Writing figures: the same figure gives the same bytes."""

from __future__ import annotations

import plotly.graph_objects as go

from analyses.figures.io import figure_id, save_figure


def _figure(y: list[float]) -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=y, name="p"))


def test_the_same_figure_gives_byte_identical_html(tmp_path):
    first = save_figure(_figure([0.1, 0.5, 0.2]), tmp_path / "a", static=False)[0]
    second = save_figure(_figure([0.1, 0.5, 0.2]), tmp_path / "b", static=False)[0]
    assert first.read_bytes() == second.read_bytes()
    assert f'id="{figure_id(_figure([0.1, 0.5, 0.2]))}"' in first.read_text()


def test_a_different_figure_gets_a_different_id():
    assert figure_id(_figure([0.1, 0.5, 0.2])) != figure_id(_figure([0.1, 0.5, 0.3]))
