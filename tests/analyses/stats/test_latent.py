"""The three example prompts of a lens table, on curves checked by hand."""

from __future__ import annotations

import pandas as pd

from analyses.stats.latent import EXAMPLE_COLUMNS, example_items

# item -> (P(en) per layer, P(target) per layer)
CURVES = {
    "a": ([0.1, 0.5, 0.2], [0.0, 0.1, 0.6]),  # nearest the mean curves
    "b": ([0.1, 0.9, 0.1], [0.0, 0.0, 0.8]),  # English leads by 0.9 at layer 1
    "c": ([0.2, 0.3, 0.1], [0.0, 0.4, 0.7]),  # the target leads already at layer 1 (by 0.1)
    "d": ([0.3, 0.5, 0.3], [0.0, 0.1, 0.4]),
}


def _table(curves) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"item": item, "layer": layer, "latent": "en", "p_en": en[layer], "p_target": target[layer]}
            for item, (en, target) in curves.items()
            for layer in range(3)
        ]
    )


def test_example_items_on_hand_checked_curves():
    examples = example_items(_table(CURVES))
    assert list(examples.columns) == list(EXAMPLE_COLUMNS)
    assert examples.set_index("example")["item"].to_dict() == {
        "typical": "a",
        "latent_leads": "b",
        "target_earliest": "c",
    }
    assert examples.set_index("example")["layer"].to_dict() == {"typical": -1, "latent_leads": 1, "target_earliest": 1}
    assert examples.set_index("example").loc["latent_leads", "value"] == 0.9


def test_no_target_earliest_when_the_target_never_leads():
    examples = example_items(_table({"e": ([0.5] * 3, [0.1] * 3), "f": ([0.6, 0.7, 0.3], [0.2] * 3)}))
    assert list(examples["example"]) == ["typical", "latent_leads"]
