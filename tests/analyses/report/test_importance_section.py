"""The importance section: the language's own region (top 1% minus English's) per layer."""

from __future__ import annotations

import pandas as pd

from analyses.report import ReportContext
from analyses.report.importance_section import FRACTION, importance_section, region_by_layer
from probes.backend.store import ResultsStore
from tests.conftest import tiny_backend


def test_region_by_layer_sums_entries_per_block():
    scopes = tiny_backend("llama").parameter_scopes()
    sizes = pd.DataFrame(
        {
            "param": [
                "model.layers.0.mlp.up_proj.weight",
                "model.layers.0.self_attn.q_proj.weight",
                "model.layers.1.mlp.up_proj.weight",
                "model.norm.weight",
            ],
            "selected": [3, 1, 0, 2],
            "numel": [100, 100, 50, 10],
        }
    )
    table = region_by_layer(sizes, scopes)
    assert table.to_dict("list") == {
        "layer": [-1, 0, 1],
        "n_region": [2, 4, 0],
        "numel": [10, 200, 50],
        "share": [0.2, 0.02, 0.0],
    }


def test_section_on_a_tiny_model(tmp_path):
    backend = tiny_backend("llama")
    result = importance_section(ReportContext(backend, "fr", ResultsStore(tmp_path), quick=True, batch_size=4))
    layers = result.tables["region_layers"]
    assert sorted(layers["layer"]) == list(range(backend.n_layers))
    # the own region is a subset of the top 1% of every tensor (per-tensor rounding down)
    assert ((layers["share"] >= 0) & (layers["share"] <= FRACTION + 1e-9)).all() and layers["n_region"].sum() > 0
    assert result.verdicts[0].answer.startswith("layers ")


def test_english_has_no_region_apart_from_itself(tmp_path):
    result = importance_section(ReportContext(tiny_backend("llama"), "en", ResultsStore(tmp_path), quick=True))
    assert not result.verdicts and "English" in result.notes[0]
