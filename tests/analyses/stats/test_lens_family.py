"""Lens-family statistics on hand-made tables."""

from __future__ import annotations

import pandas as pd

from analyses.stats.lens_family import beats_logit, bias_table, lens_agreement


def test_beats_logit_counts_the_layers_before_the_last():
    rows = []
    for lang, linear_kl in {"fr": [1.0, 0.5, 0.0], "zh": [1.0, 3.0, 0.0]}.items():
        for layer, (logit, linear) in enumerate(zip([2.0, 2.0, 0.0], linear_kl)):
            rows += [
                {"lens": "logit", "lang": lang, "layer": layer, "kl_bits": logit},
                {"lens": "linear", "lang": lang, "layer": layer, "kl_bits": linear},
            ]
    table = beats_logit(pd.DataFrame(rows)).set_index("lang")
    assert table.loc["fr", "lower_at_every_layer"] and table.loc["fr", "layers_lower"] == 2
    assert not table.loc["zh", "lower_at_every_layer"] and table.loc["zh", "layers_lower"] == 1


def test_lens_agreement_flags_a_decision_held_under_one_lens_only():
    decisions = {
        "fr": [True, True, True, False],
        "zh": [True, True, True, True],
        "ja": [False, True, False, True],
        "te": [None, None, None, False],  # the lens is empty at layer n except under the tuned lens
    }
    lenses = ["logit", "linear", "linear-en", "tuned"]
    table = pd.DataFrame(
        [{"lang": lang, "lens": lens, "pivot": p} for lang, ps in decisions.items() for lens, p in zip(lenses, ps)]
    )
    out = lens_agreement(table).set_index("lang")
    assert out.loc["zh", "same_under_every_lens"] and out.loc["zh", "only_under"] == ""
    assert not out.loc["fr", "same_under_every_lens"] and out.loc["fr", "only_under"] == "tuned"
    assert out.loc["ja", "only_under"] == "" and out.loc["ja", "pivot_logit"] == "no pivot"
    assert out.loc["ja", "pivot_tuned"] == "pivot"
    assert out.loc["te", "pivot_logit"] == "undecided" and out.loc["te", "only_under"] == "tuned"


def test_bias_table_compares_p_en_of_the_two_fits_at_one_layer():
    table = pd.DataFrame(
        {
            "lang": ["fr"] * 4,
            "layer": [3, 3, 3, 4],
            "lens": ["linear", "linear-en", "linear-en", "linear"],
            "p_en": [0.1, 0.2, 0.4, 0.9],
        }
    )
    row = bias_table(table, layer=3).iloc[0]
    assert abs(row["p_en_linear-en"] - 0.3) < 1e-12 and abs(row["p_en_linear"] - 0.1) < 1e-12
    assert abs(row["difference"] - 0.2) < 1e-12 and row["en_fit_raises_p_en"]
