"""Confusion-point statistics (the paper's Table 7), the cluster bootstrap, the contrasts, the
completions table and the sweep grid, on constructed step tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyses.figures.confusion import cp_distribution_figure, sweep_figure
from analyses.pipelines.confusion import sweep_configs
from analyses.stats.confusion_points import (
    cluster_bootstrap_mean,
    completions_table,
    cp_contrast,
    cp_statistics,
    table7,
)
from analyses.stats.intervals import bootstrap_mean_interval


def _steps() -> pd.DataFrame:
    """Three completions: A has a CP at step 1, B has none, C has a CP at step 0; C's last
    step lies after the completion's end."""
    rows = []
    spec = {
        "A": ([1.0, 5.0, 1.0, 2.0], [1, 9, 1, 2], 1, [True] * 4),
        "B": ([2.0, 2.0, 0.5], [2, 2, 1], None, [True] * 3),
        "C": ([4.0, 1.0, 9.0], [7, 1, 50], 0, [True, True, False]),
    }
    for item, (entropy, nucleus, cp, inside) in spec.items():
        for step, (h, k, keep) in enumerate(zip(entropy, nucleus, inside)):
            rows.append(
                {
                    "item": item,
                    "model": "m",
                    "task": "monolingual",
                    "source": "s",
                    "lang": "zh",
                    "row": ord(item) - 65,
                    "step": step,
                    "token": "x",
                    "entropy_bits": h,
                    "nucleus_size": k,
                    "in_completion": keep,
                    "is_confusion_point": step == cp,
                    "has_cp": cp is not None,
                    "error_type": "full_error",
                    "completion": f"text {item}",
                }
            )
    return pd.DataFrame(rows)


def test_cluster_bootstrap_point_estimate_and_degenerate_cases():
    values, clusters = np.array([1.0, 2.0, 3.0, 10.0]), np.array(["a", "a", "b", "b"])
    mean, low, high = cluster_bootstrap_mean(values, clusters, n_boot=2000, seed=0)
    assert mean == pytest.approx(4.0)
    # resampling whole clusters: the pooled mean can only be 1.5 (aa), 4.0 (ab) or 6.5 (bb)
    assert low == pytest.approx(1.5) and high == pytest.approx(6.5)
    same = cluster_bootstrap_mean(np.full(6, 2.0), np.arange(6))
    assert same == pytest.approx((2.0, 2.0, 2.0))
    assert all(np.isnan(cluster_bootstrap_mean(np.array([]), np.array([]))))


def test_cluster_bootstrap_of_singletons_is_scipys_bootstrap_of_the_mean():
    # one value per cluster: resampling clusters is resampling values, drawn as scipy draws them
    values = np.random.default_rng(3).normal(size=40)
    _, low, high = cluster_bootstrap_mean(values, np.arange(40), n_boot=500, seed=7)
    assert (low, high) == pytest.approx(bootstrap_mean_interval(values, n_boot=500, seed=7), abs=1e-12)


def test_table7_cells_by_hand():
    stats = cp_statistics(_steps(), n_boot=200).set_index(["group", "position", "statistic"])
    # in-completion steps only: C's third step is excluded
    assert stats.loc[("has_cp", "at_cp", "entropy_bits"), "mean"] == pytest.approx((5.0 + 4.0) / 2)
    assert stats.loc[("has_cp", "not_at_cp", "entropy_bits"), "mean"] == pytest.approx((1 + 1 + 2 + 1) / 4)
    assert stats.loc[("has_cp", "overall", "nucleus_size"), "mean"] == pytest.approx((1 + 9 + 1 + 2 + 7 + 1) / 6)
    assert stats.loc[("no_cp", "overall", "entropy_bits"), "mean"] == pytest.approx(1.5)
    assert np.isnan(stats.loc[("no_cp", "at_cp", "entropy_bits"), "mean"])
    assert stats.loc[("all", "overall", "entropy_bits"), "n_steps"] == 9
    assert stats.loc[("all", "overall", "entropy_bits"), "n_completions"] == 3
    wide = table7(cp_statistics(_steps(), n_boot=50))
    assert list(wide["group"]) == ["has_cp", "no_cp", "all"] and wide.loc[1, "entropy_bits at_cp"] == "-"


def test_contrasts_within_and_at_the_same_step():
    contrast = cp_contrast(_steps(), n_boot=200).set_index("statistic")
    entropy = contrast.loc["entropy_bits"]
    # A: 5 - mean(1, 1, 2); C: 4 - mean(1) (its third step is outside the completion)
    assert entropy["within_difference"] == pytest.approx(((5 - 4 / 3) + (4 - 1)) / 2)
    # same step in completions without a CP (only B): A at step 1 -> 2.0, C at step 0 -> 2.0
    assert entropy["same_step_difference"] == pytest.approx(((5 - 2) + (4 - 2)) / 2)
    assert entropy["share_first_step"] == pytest.approx(0.5) and entropy["n_cp"] == 2


def test_completions_table_is_the_benchmark_output_format():
    table = completions_table(_steps())
    assert list(table.columns[:6]) == ["id", "model", "completion", "task", "source", "language"]
    assert table["completion"].tolist() == ["text A", "text B", "text C"]
    assert table["has_cp"].tolist() == [True, False, True]


def test_sweep_varies_one_factor_at_a_time():
    configs = sweep_configs((0.0, 1.0), (0.5,), (0, 5))
    assert [(c.factor, c.value) for c in configs] == [
        ("temperature", 0.0),
        ("temperature", 1.0),
        ("top_p", 0.5),
        ("shots", 0),
        ("shots", 5),
    ]
    assert all(
        (c.temperature, c.top_p, c.shots) == (0.3, 0.75, 0) for c in configs if c.factor == "shots" and c.value == 0
    )
    assert configs[2].temperature == 0.3 and configs[4].shots == 5 and configs[4].top_p == 0.75


def test_figures_are_built_from_the_tables():
    steps = _steps()
    fig = cp_distribution_figure(steps, cp_statistics(steps, n_boot=50))
    assert "2 CPs" in fig.layout.title.text
    sweep = pd.DataFrame(
        {
            "task": "monolingual",
            "model": "m",
            "source": "all",
            "language": "all",
            "factor": ["temperature", "temperature"],
            "value": [0.0, 1.0],
            "lpr": [0.9, 0.5],
            "lpr_low": [0.8, 0.4],
            "lpr_high": [1.0, 0.6],
            "wpr": [np.nan, np.nan],
            "wpr_low": [np.nan] * 2,
            "wpr_high": [np.nan] * 2,
        }
    )
    fig = sweep_figure(sweep)
    lpr = next(t for t in fig.data if t.name == "LPR")
    assert list(lpr.y) == [0.9, 0.5] and list(lpr.error_y.array) == pytest.approx([0.1, 0.1])
