"""The exit section's two decisions on constructed tables."""

from __future__ import annotations

import pandas as pd
import pytest

from analyses.report.exit_section import cheapest_safe_exit, first_right_layer, majority_share


def test_first_right_layer_is_where_accuracy_reaches_the_outputs_lower_bound():
    layers = pd.DataFrame(
        {"layer": [0, 1, 2, 3], "accuracy_options": [0.2, 0.55, 0.8, 0.7], "accuracy_options_low": [0.1, 0.4, 0.7, 0.6]}
    )
    assert first_right_layer(layers) == 2  # 0.55 < 0.6 (the last layer's lower bound), 0.8 >= 0.6
    dip = layers.assign(accuracy_options=[0.7, 0.55, 0.8, 0.7])  # right at layer 0, lost at 1, right again from 2
    assert first_right_layer(dip) == 2


def test_majority_share_counts_items_once():
    items = pd.DataFrame(
        {"item": ["a", "a", "b", "b", "c", "c"], "layer": [0, 1] * 3, "gold": ["x", "x", "x", "x", "y", "y"]}
    )
    assert majority_share(items) == pytest.approx(2 / 3)


def test_cheapest_safe_exit_keeps_the_full_accuracy_inside_its_interval():
    static = pd.DataFrame(
        {
            "layer": [0, 1, 2, 3],
            "accuracy": [0.1, 0.6, 0.75, 0.8],
            "accuracy_high": [0.2, 0.7, 0.85, 0.9],
            "flops_ratio": [25.0, 50.0, 75.0, 100.0],
        }
    )
    assert int(cheapest_safe_exit(static)["layer"]) == 2
    assert int(cheapest_safe_exit(static.assign(accuracy_high=static["accuracy"]))["layer"]) == 3
