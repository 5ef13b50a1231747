"""Whether a lower-precision run says what the float32 run says: the lever "bfloat16 compute on
CPUs with native bfloat16" is kept only where, language by language, PROM's decision is the same
and every point of every lens curve (mean P(en), mean P(target), entropy, per layer) lies inside
the float32 curve's 95% interval, so the precision changes nothing that sampling could not."""

from __future__ import annotations

import pandas as pd

from analyses.stats.prom_lambda import verdict

CURVE_QUANTITIES = ("p_en", "p_target", "entropy_bits")


def curve_agreement(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per language: the largest absolute difference of each curve (``max_abs_diff_<quantity>``)
    and how many of ``other``'s points lie inside ``reference``'s interval (``points_inside`` of
    ``points``). Both tables are ``curves.csv`` tables (lang, layer, quantity, mean, ci_low, ci_high)."""
    keys = ["lang", "layer", "quantity"]
    both = reference.merge(other[[*keys, "mean"]], on=keys, suffixes=("", "_other"), validate="one_to_one")
    both = both[both["quantity"].isin(CURVE_QUANTITIES)]
    both = both.assign(
        abs_diff=(both["mean_other"] - both["mean"]).abs(),
        inside=both["mean_other"].between(both["ci_low"], both["ci_high"]),
    )
    largest = both.pivot_table(index="lang", columns="quantity", values="abs_diff", aggfunc="max")
    largest.columns = [f"max_abs_diff_{quantity}" for quantity in largest.columns]
    counts = both.groupby("lang")["inside"].agg(points_inside="sum", points="size")
    return largest.join(counts).reset_index()


def dtype_agreement(
    reference_lambdas: pd.DataFrame,
    reference_curves: pd.DataFrame,
    other_lambdas: pd.DataFrame,
    other_curves: pd.DataFrame,
    *,
    names: tuple[str, str] = ("float32", "bfloat16"),
) -> pd.DataFrame:
    """Per language of both runs: each run's PROM verdict (``verdict_<name>``), whether they are the
    same (``same_verdict``: lambda, borderline flag, or undecided), the curve agreement of
    :func:`curve_agreement`, and ``agrees``: the same verdict and every curve point inside the
    reference's 95% interval."""
    reference_name, other_name = names
    verdicts = pd.merge(
        reference_lambdas.assign(**{f"verdict_{reference_name}": reference_lambdas.apply(verdict, axis=1)}),
        other_lambdas.assign(**{f"verdict_{other_name}": other_lambdas.apply(verdict, axis=1)}),
        on="lang",
        suffixes=("", "_other"),
        validate="one_to_one",
    )[["lang", "n", "n_other", f"verdict_{reference_name}", f"verdict_{other_name}"]]
    verdicts["same_verdict"] = verdicts[f"verdict_{reference_name}"] == verdicts[f"verdict_{other_name}"]
    table = verdicts.merge(curve_agreement(reference_curves, other_curves), on="lang", validate="one_to_one")
    table["agrees"] = table["same_verdict"] & (table["points_inside"] == table["points"])
    return table.sort_values("lang").reset_index(drop=True)
