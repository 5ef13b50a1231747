"""Tables about lenses: which layers each fitted lens reads better than the logit lens, and
whether PROM's decision depends on the lens."""

from __future__ import annotations

import pandas as pd


def beats_logit(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Per fitted lens and language: whether its KL is below the logit lens' at every layer before
    the last (``lower_at_every_layer``) and at how many of them (``layers_lower``)."""
    last = evaluation["layer"].max()
    early = evaluation[evaluation["layer"] < last]
    logit = early[early["lens"] == "logit"].set_index(["lang", "layer"])["kl_bits"]
    rows = []
    for (lens, lang), group in early[early["lens"] != "logit"].groupby(["lens", "lang"], sort=False):
        lower = group.set_index("layer")["kl_bits"] < logit.loc[lang]
        rows.append(
            {
                "lens": lens,
                "lang": lang,
                "layers_lower": int(lower.sum()),
                "layers": len(lower),
                "lower_at_every_layer": bool(lower.all()),
            }
        )
    return pd.DataFrame(rows)


def decision(pivot: object) -> str:
    """A lambda row's ``pivot`` as a word: pivot, no pivot, or undecided (the lens was empty)."""
    return "undecided" if pd.isna(pivot) else ("pivot" if pivot else "no pivot")  # type: ignore[arg-type]


def lens_agreement(lambdas: pd.DataFrame) -> pd.DataFrame:
    """Per language, from PROM lambda tables stacked with a ``lens`` column: each lens' decision
    (``pivot_<lens>``: pivot, no pivot or undecided), whether all lenses agree
    (``same_under_every_lens``) and a decision held under one lens only (``only_under``: that
    lens, else empty)."""
    words = lambdas.assign(decision=lambdas["pivot"].map(decision))
    wide = words.pivot_table(index="lang", columns="lens", values="decision", aggfunc="first")
    rows = []
    for lang, row in wide.iterrows():
        decisions = row.dropna()
        counts = decisions.value_counts()
        lone = [str(lens) for lens, said in decisions.items() if counts[said] == 1 and len(decisions) > 2]
        rows.append(
            {
                "lang": lang,
                **{f"pivot_{lens}": said for lens, said in decisions.items()},
                "same_under_every_lens": bool(decisions.nunique() == 1),
                "only_under": ",".join(lone),
            }
        )
    return pd.DataFrame(rows)


def bias_table(
    lens_tables: pd.DataFrame, layer: int, english: str = "linear-en", multilingual: str = "linear"
) -> pd.DataFrame:
    """Per language at ``layer``: mean P_en under the English-only and the multilingual fit and
    their difference (``en_fit_raises_p_en``: the English-only fit reads more English)."""
    at = lens_tables[lens_tables["layer"] == layer]
    means = at.groupby(["lang", "lens"])["p_en"].mean().unstack("lens")
    out = pd.DataFrame(
        {
            "lang": means.index,
            "layer": layer,
            f"p_en_{english}": means[english].to_numpy(),
            f"p_en_{multilingual}": means[multilingual].to_numpy(),
        }
    )
    out["difference"] = out[f"p_en_{english}"] - out[f"p_en_{multilingual}"]
    out["en_fit_raises_p_en"] = out["difference"] > 0
    return out.reset_index(drop=True)
