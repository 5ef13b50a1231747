"""PROM's regulation rule per language (Lee et al., PROM Sec. 2.3 and footnote 3; docs/methods/prom.md).

At layer ``n`` (PROM: n = 24 of 32, i.e. three quarters of the depth), compare the mean
logit-lens probability of the English word ``P_{n,e}`` with that of the target word
``P_{n,t}``: ``lambda = 0`` if mean P_{n,e} < mean P_{n,t} (no English pivot, so the pivoted
objective is switched off), else ``lambda0`` (PROM's 0.1). PROM measures the probabilities on
Wendler et al.'s cloze task, 5-shot; the table names the task, shot count and source language
its rows come from.

Two ways the data may not decide, both in the table:

- ``borderline``: the percentile bootstrap interval of the difference of means contains 0.
  The rule's point estimate stays in ``lambda``.
- the lens is empty at layer n: both means are below ``floor``. The lens then puts on either
  word less than the model's output puts on a word it does not say, and comparing two
  near-zero numbers is no evidence of a pivot: ``lambda`` is empty (NaN), ``pivot`` is empty,
  and ``nonempty_layer`` names the nearest layer where one of the two means reaches the floor.

``decided`` is True only when the lens is not empty and the interval excludes 0.

The default floor, ``EMPTY_FLOOR = 1e-3``, comes from the committed translation sweeps
(results/lens): at gemma-3-270m's layer n = 13 the larger of the two means is at least 7e-3 for
every one of the 24 languages (median 0.067), while at smollm2-135m's n = 22 its median over
languages is 9.5e-7 and the largest 1.4e-3; 1e-3 lies below every Gemma language by a factor
of seven and above all but one SmolLM2 language, and on both vocabularies (262k and 49k tokens)
it is more than twenty times the uniform probability, so a mean above it is a word the lens
reads, not noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analyses.stats.intervals import bootstrap_mean_interval
from analyses.stats.latent import latent_column, layer_curves, pivot_summary
from probes.backend.languages import get_language

EMPTY_FLOOR = 1e-3
LAMBDA_COLUMNS = {
    "lang": "target language",
    "task": "cloze (PROM's protocol), translation or repetition",
    "shots": "demonstrations per prompt",
    "layer": "PROM's layer n (0-based)",
    "n": "prompts at layer n",
    "n_dropped_copy": "prompts dropped because the answer could be copied from the prompt",
    "n_dropped_degenerate": "prompts dropped because the target and latent words cannot be told apart",
    "mean_p_en": "mean P(latent word) at layer n (English unless the latent column says otherwise)",
    "mean_p_target": "mean P(target word) at layer n",
    "diff_ci_low": "95% bootstrap interval of mean P(en) - mean P(target), low end",
    "diff_ci_high": "high end",
    "pivot": "mean P(en) >= mean P(target); empty when the lens is empty",
    "lambda": "PROM's lambda: lambda0 where the model pivots, 0 where not, empty when the lens is empty",
    "borderline": "the interval contains 0",
    "decided": "the lens is not empty at layer n and the interval excludes 0",
    "src_lang": "source language of the prompts (the target itself for cloze)",
    "latent": "latent language of mean_p_en",
    "share_chain": "share of the prompts whose words were scored by their chain probability",
    "nonempty_layer": "when the lens is empty at n: the nearest layer where a mean reaches the floor (-1: none)",
}


def prom_layer(n_layers: int, fraction: float = 0.75) -> int:
    """0-based index of PROM's layer n: the ``round(fraction·L)``-th block (1-based), rounding
    half up; 24 -> 23 for L = 32, 14 -> 13 for L = 18, 23 -> 22 for L = 30."""
    return max(0, int(fraction * n_layers + 0.5) - 1)


def _first(group: pd.DataFrame, column: str, default):
    return group[column].iloc[0] if column in group else default


def nearest_nonempty_layer(means: pd.DataFrame, layer: int, floor: float) -> int:
    """The layer nearest to ``layer`` (the later one on a tie) where the larger of the two means
    reaches ``floor``; -1 when there is none. ``means`` is indexed by layer."""
    reached = means.index[means.max(axis=1) >= floor]
    if not len(reached):
        return -1
    return int(min(reached, key=lambda candidate: (abs(candidate - layer), -candidate)))


def lambda_table(
    table: pd.DataFrame,
    *,
    layer: int | None = None,
    n_layers: int | None = None,
    lambda0: float = 0.1,
    floor: float = EMPTY_FLOOR,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per language, the columns of ``LAMBDA_COLUMNS``. ``layer`` defaults to
    :func:`prom_layer` of the depth; ``floor`` is the abstain floor (module docstring)."""
    if not floor > 0:
        raise ValueError(f"the empty-lens floor must be positive (got {floor}); the default is {EMPTY_FLOOR}")
    latent = latent_column(table)
    depth = n_layers or int(table["layer"].max()) + 1
    at = prom_layer(depth) if layer is None else layer
    rows = []
    for lang, everything in table.groupby("lang"):
        group = everything[everything["layer"] == at]
        diff = (group[latent] - group["p_target"]).to_numpy()
        low, high = bootstrap_mean_interval(diff, n_boot=n_boot, seed=seed)
        mean_en, mean_target = float(group[latent].mean()), float(group["p_target"].mean())
        empty = max(mean_en, mean_target) < floor
        pivot = None if empty else bool(not mean_en < mean_target)
        borderline = bool(low <= 0 <= high)
        means = everything.groupby("layer")[[latent, "p_target"]].mean()
        rows.append(
            {
                "lang": lang,
                "task": _first(group, "task", "translation"),
                "shots": int(_first(group, "shots", 0)),
                "layer": at,
                "n": len(group),
                "n_dropped_copy": int(_first(group, "n_dropped_copy", 0)),
                "n_dropped_degenerate": int(_first(group, "n_dropped_degenerate", 0)),
                "mean_p_en": mean_en,
                "mean_p_target": mean_target,
                "diff_ci_low": low,
                "diff_ci_high": high,
                "pivot": pivot,
                "lambda": float("nan") if empty else (lambda0 if pivot else 0.0),
                "borderline": borderline,
                "decided": not empty and not borderline,
                "src_lang": _first(group, "src_lang", lang),
                "latent": latent.removeprefix("p_"),
                "share_chain": float((group["word_prob"] == "chain").mean()) if "word_prob" in group else 0.0,
                "nonempty_layer": nearest_nonempty_layer(means, at, floor) if empty else at,
            }
        )
    return pd.DataFrame(rows, columns=list(LAMBDA_COLUMNS))


def verdict(row: pd.Series) -> str:
    """The decision of one row in words: ``lambda = 0.1``, ``lambda = 0 (borderline)`` or
    ``undecided: the lens is empty at layer n (nearest non-empty layer: m)``."""
    if pd.isna(row["lambda"]):
        nearest = (
            f"nearest non-empty layer: {row['nonempty_layer']}"
            if row["nonempty_layer"] >= 0
            else "empty at every layer"
        )
        return f"undecided: the lens is empty at layer {row['layer']} ({nearest})"
    return f"lambda = {row['lambda']:g}" + (" (borderline)" if row["borderline"] else "")


def protocol(row: pd.Series) -> str:
    """``cloze, 5-shot, source sw`` / ``translation, 5-shot, source ru``."""
    return f"{row['task']}, {row['shots']}-shot, source {row['src_lang']}"


@dataclass
class LensResults:
    lens: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    lambdas: pd.DataFrame


def analyse(
    lens: pd.DataFrame, *, n_layers: int, layer: int | None = None, lambda0: float = 0.1, floor: float = EMPTY_FLOOR
) -> LensResults:
    return LensResults(
        lens=lens,
        curves=layer_curves(lens),
        summary=pivot_summary(lens),
        lambdas=lambda_table(lens, layer=layer, n_layers=n_layers, lambda0=lambda0, floor=floor),
    )


def copy_costs(lambdas: pd.DataFrame) -> list[str]:
    """One line per language whose translation source shares the target's script: how many
    prompts the copy rule dropped there."""
    lines = []
    for row in lambdas.to_dict("records"):
        script = get_language(row["lang"]).script
        if row["task"] == "translation" and get_language(row["src_lang"]).script == script:
            total = row["n"] + row["n_dropped_copy"] + row["n_dropped_degenerate"]
            lines.append(
                f"source {row['src_lang']} shares the {script} script with {row['lang']}: "
                f"{row['n_dropped_copy']} of {total} prompts dropped "
                "because the answer shares a token with the source word (--source ru or the cloze task avoids this)"
            )
    return lines
