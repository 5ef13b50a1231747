"""The replay's statistics and decisions on synthetic tables: bootstrap accuracy, the grid, Table 1,
and the swap suggested from the lens and the weight-change profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyses.interventions.layer_swap import SwapConfig, depth_scaled, zones
from analyses.pipelines.layer_swap import (
    ReplaySettings,
    accuracy_table,
    config_label,
    paired_differences,
    region_enrichment,
    region_evidence,
    suggest_swap,
    summarise_swaps,
    swap_grid,
)


def _profile(values) -> pd.DataFrame:
    return pd.DataFrame({"layer": range(len(values)), "value": values})


def test_suggestion_reads_the_lens_and_the_weight_profiles():
    lang = _profile([5, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 6])
    task = _profile([1] * 18)
    config, evidence = suggest_swap(18, overtake_layer=16, lang_profile=lang, task_profile=task)
    # mean 37/18: 5, 4 and 3 lie above it, 1 below: three leading (and three trailing) layers;
    # lens: 18 - 16 = 2 top layers
    assert (config.bottom, config.top) == (3, 2) and config.transition_bottom == config.transition_top == 1
    assert evidence["leading_excess_layers"] == 3 and evidence["trailing_excess_layers"] == 3
    without_lens, evidence = suggest_swap(18, overtake_layer=-1, lang_profile=lang, task_profile=task)
    assert without_lens.top == 3 and evidence["top_from"] == "weight change"
    zones(18, config)  # a valid swap


def test_suggestion_keeps_task_layers():
    lang = _profile([3] * 8)
    task = _profile([1, 1, 1, 1, 1, 1, 1, 2])  # the language expert leads everywhere but the last layer
    config, _ = suggest_swap(8, overtake_layer=0, lang_profile=lang, task_profile=task, min_task_layers=2)
    assert config.bottom + config.top + 2 <= 8 - 2
    assert sum(z.end - z.start for z in zones(8, config) if z.name == "task") >= 2


def test_grid_contains_the_default_and_fits():
    settings = ReplaySettings(grid_bottom=(1, 2, 3), grid_top=(0, 1, 2), grid_transition=(1,))
    grid = swap_grid(settings, 18)
    assert depth_scaled(18) in grid and len(grid) == 9
    assert swap_grid(ReplaySettings(grid_bottom=(3,), grid_top=(2,), grid_transition=(2,)), 8) == [depth_scaled(8)]


def test_accuracy_table_bootstrap():
    rng = np.random.default_rng(0)
    results = pd.DataFrame(
        {
            "setting": ["a"] * 200 + ["b"] * 50,
            "lang": "sw",
            "correct": np.r_[rng.random(200) < 0.3, np.ones(50, dtype=bool)],
        }
    )
    table = accuracy_table(results, by=("setting", "lang")).set_index("setting")
    a = table.loc["a"]
    assert a["n"] == 200 and a["ci_low"] < a["accuracy"] < a["ci_high"]
    half = 1.96 * np.sqrt(a["accuracy"] * (1 - a["accuracy"]) / 200)  # the normal approximation
    assert (a["ci_high"] - a["ci_low"]) / 2 == pytest.approx(half, rel=0.15)
    assert table.loc["b", "accuracy"] == table.loc["b", "ci_low"] == table.loc["b", "ci_high"] == 1.0


def test_summary_builds_table1_and_ranks_the_suggestion():
    def rows(setting, correct, config=None, **flags):
        frame = pd.DataFrame({"setting": setting, "lang": "sw", "correct": correct})
        if config is not None:
            frame = frame.assign(config=config, **flags)
        return frame

    default, better, worse = SwapConfig(2, 1, 1, 1), SwapConfig(1, 0, 1, 1), SwapConfig(3, 2, 1, 1)
    suggested = SwapConfig(2, 2, 1, 1)  # outside the grid
    results = pd.concat(
        [
            rows("base", [0, 0, 0, 1]),
            rows("language expert", [0, 0, 1, 1]),
            rows("task expert", [0, 1, 1, 1]),
            rows("soup", [0, 1, 0, 1]),
            rows("swap", [1, 1, 0, 1], config_label(default), suggested=False),
            rows("swap", [1, 1, 1, 1], config_label(better), suggested=False),
            rows("swap", [0, 0, 0, 0], config_label(worse), suggested=False),
            rows("swap", [1, 0, 0, 1], config_label(suggested), suggested=True),
        ],
        ignore_index=True,
    )
    summary = summarise_swaps(
        results, grid_labels=[config_label(c) for c in (default, better, worse)], default_label=config_label(default)
    )
    table1 = summary["table1"].set_index("setting")["accuracy"]
    assert table1.to_dict() == {
        "base": 0.25,
        "language expert": 0.5,
        "task expert": 0.75,
        "soup": 0.5,
        "swap (default)": 0.75,
        "swap (best of grid)": 1.0,
    }
    assert summary["table1"].set_index("setting").loc["swap (best of grid)", "config"] == config_label(better)
    grid = summary["grid"].set_index("config")["rank"]
    assert grid[config_label(better)] == 1 and grid[config_label(default)] == 2 and grid[config_label(worse)] == 3
    rank = summary["suggestion_rank"].iloc[0]
    assert rank["suggestion_rank"] == 3 and rank["grid_size"] == 3 and not rank["suggestion_in_grid"]


def test_figures_come_from_the_tables():
    from analyses.figures.layer_swap import grid_figure, table1_figure, zones_figure

    table1 = pd.DataFrame(
        {
            "lang": ["sw", "sw", "ja", "ja"],
            "setting": ["base", "soup"] * 2,
            "config": "",
            "accuracy": [0.1, 0.3, 0.2, 0.4],
            "ci_low": [0.05, 0.2, 0.1, 0.3],
            "ci_high": [0.2, 0.4, 0.3, 0.5],
            "n": 100,
        }
    )
    fig = table1_figure(table1)
    assert [t.name for t in fig.data] == ["base", "soup"] and list(fig.data[1].y) == pytest.approx([30.0, 40.0])
    assert list(fig.data[0].error_y.array) == pytest.approx([10.0, 10.0])
    grid = pd.DataFrame(
        {
            "lang": "sw",
            "config": [config_label(SwapConfig(b, u, 1, 1)) for b in (1, 2) for u in (0, 1)],
            "accuracy": [0.1, 0.2, 0.3, 0.4],
        }
    )
    fig = grid_figure(grid)
    np.testing.assert_allclose(np.array(fig.data[0].z), [[10.0, 20.0], [30.0, 40.0]])
    fig = zones_figure({"a": SwapConfig(2, 1, 1, 1)}, 6)
    assert [row[0] for row in fig.data[0].z] == [0.0, 0.0, 0.5, 1.0, 0.5, 0.0]


def test_monolingual_region_evidence(tmp_path):
    # 4 blocks of 100 parameters (one tensor each) and an embedding of 400 outside the blocks;
    # the region selects 30, 10, 10, 20 and 10 of them: 80 of 800 overall (10%)
    params = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(4)] + ["model.embed_tokens.weight"]
    sizes = pd.DataFrame(
        {"region": "mono-top-zh", "param": params, "numel": [100, 100, 100, 100, 400], "selected": [30, 10, 10, 20, 10]}
    )
    sizes = pd.concat([sizes, sizes.assign(region="core-top")], ignore_index=True)
    path = tmp_path / "region_sizes.csv"
    sizes.to_csv(path, index=False)
    enrichment = region_enrichment(path, "zh")
    np.testing.assert_allclose(enrichment["enrichment"], [3.0, 1.0, 1.0, 2.0])
    assert region_evidence(enrichment) == {
        "region_layers": "0 3",
        "region_leading_layers": 1,
        "region_trailing_layers": 1,
    }
    assert region_enrichment(path, "sw") is None and region_enrichment(tmp_path / "missing.csv", "zh") is None
    assert region_evidence(None)["region_leading_layers"] == -1


def test_paired_differences_against_the_reference():
    ids = [str(i) for i in range(6)]
    results = pd.concat(
        [
            pd.DataFrame({"setting": "task expert", "lang": "sw", "id": ids, "correct": [1, 1, 0, 0, 1, 0]}),
            pd.DataFrame({"setting": "soup", "lang": "sw", "id": ids[::-1], "correct": [1, 1, 1, 1, 1, 1]}),
            pd.DataFrame({"setting": "swap", "lang": "sw", "id": ids, "correct": [1, 1, 0, 0, 1, 0], "config": "b=1"}),
        ],
        ignore_index=True,
    )
    table = paired_differences(results).set_index("setting")
    assert table.loc["soup", "difference"] == pytest.approx(0.5) and table.loc["soup", "n"] == 6
    # identical answers on every problem: the paired interval collapses to 0
    assert table.loc["swap", ["difference", "ci_low", "ci_high"]].tolist() == [0.0, 0.0, 0.0]
    assert table.loc["swap", "config"] == "b=1" and "task expert" not in table.index
