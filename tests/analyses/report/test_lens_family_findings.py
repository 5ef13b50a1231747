"""The lens-family findings are what the tables say: on hand-made tables, and in the committed README."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.report.lens_family_findings import committed_block, findings

RESULTS = Path(__file__).resolve().parents[3] / "results" / "lens_family"


def test_findings_state_the_numbers_of_the_tables(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    langs = ["fr", "de", "zh", "ja", "ru", "sw"]
    pd.DataFrame(
        [
            {
                "lens": "linear",
                "lang": lang,
                "layers_lower": 2 if lang != "sw" else 1,
                "layers": 2,
                "lower_at_every_layer": lang != "sw",
            }
            for lang in langs
        ]
    ).to_csv(folder / "lens_vs_logit.csv", index=False)
    pd.DataFrame(
        [
            {"lens": lens, "lang": lang, "layer": layer, "kl_bits": kl, "n_tokens": 10}
            for lens, kl in (("logit", 4.0), ("linear", 1.0))
            for lang in langs
            for layer in range(3)
        ]
    ).to_csv(folder / "lens_eval.csv", index=False)
    pd.DataFrame(
        {"lang": ["fr", "zh"], "layer": 13, "difference": [0.01, -0.02], "en_fit_raises_p_en": [True, False]}
    ).to_csv(folder / "lens_bias.csv", index=False)
    text = findings(tmp_path)
    assert "### m" in text and "6 languages, 60 tokens" in text and "logit 4.00 bits, linear 1.00 bits" in text
    assert "in 5 of 6 languages (fr, de, zh, ja, ru); the at-least-5-languages criterion holds" in text
    assert "higher mean P(en) in 1 of 2 languages (fr); mean difference -0.0050" in text and "does not raise" in text
    assert "PROM's decision under every lens: not measured" in text


def test_the_committed_readme_says_what_the_committed_tables_say():
    readme = RESULTS / "README.md"
    if readme.is_file():
        assert committed_block(readme) == findings(RESULTS)
