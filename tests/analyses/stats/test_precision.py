"""Agreement of a lower-precision run with float32, on hand-made tables."""

from __future__ import annotations

import pandas as pd
import pytest

from analyses.stats.precision import curve_agreement, dtype_agreement


def _lambdas(**lambdas: float | None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "lang": lang,
                "layer": 2,
                "n": 10,
                "lambda": value,
                "borderline": False,
                "nonempty_layer": 2 if value is not None else -1,
            }
            for lang, value in lambdas.items()
        ]
    )


def _curves(shift: dict[tuple[str, int, str], float] | None = None) -> pd.DataFrame:
    rows = []
    for lang in ("fr", "zh"):
        for layer in range(3):
            for quantity, mean in (("p_en", 0.2), ("p_target", 0.1), ("entropy_bits", 3.0)):
                value = mean + (shift or {}).get((lang, layer, quantity), 0.0)
                rows.append(
                    {
                        "lang": lang,
                        "layer": layer,
                        "quantity": quantity,
                        "mean": value,
                        "n": 10,
                        "ci_low": mean - 0.05,
                        "ci_high": mean + 0.05,
                    }
                )
    return pd.DataFrame(rows)


def test_identical_runs_agree_everywhere():
    table = dtype_agreement(_lambdas(fr=0.1, zh=0.0), _curves(), _lambdas(fr=0.1, zh=0.0), _curves())
    assert table["agrees"].all() and table["same_verdict"].all()
    assert (table["points_inside"] == 9).all() and (table["max_abs_diff_p_en"] == 0).all()


def test_a_point_outside_the_interval_or_another_verdict_disagrees():
    moved = _curves({("zh", 1, "p_target"): 0.08, ("fr", 2, "p_en"): 0.01})
    table = dtype_agreement(_lambdas(fr=0.1, zh=0.0), _curves(), _lambdas(fr=None, zh=0.0), moved).set_index("lang")
    # fr: a point moved inside the interval, but the verdict went from 0.1 to undecided
    assert not table.loc["fr", "same_verdict"] and table.loc["fr", "points_inside"] == 9
    assert table.loc["fr", "max_abs_diff_p_en"] == pytest.approx(0.01)
    assert table.loc["fr", "verdict_bfloat16"].startswith("undecided")
    # zh: same verdict, but one point left the reference's interval
    assert table.loc["zh", "same_verdict"] and table.loc["zh", "points_inside"] == 8
    assert table.loc["zh", "max_abs_diff_p_target"] == pytest.approx(0.08)
    assert not table["agrees"].any()


def test_curve_agreement_needs_the_same_points_on_both_sides():
    with pytest.raises(pd.errors.MergeError):
        curve_agreement(pd.concat([_curves(), _curves()]), _curves())
