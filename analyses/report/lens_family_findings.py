"""The findings of ``results/lens_family/README.md``, generated from its tables.

``pivotlens findings`` rewrites the block between the README's findings markers; a test checks
that the committed block is what the tables say.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

START, END = "<!-- findings: generated from the tables -->", "<!-- end of findings -->"


def _eval_lines(folder: Path) -> list[str]:
    verdicts = pd.read_csv(folder / "lens_vs_logit.csv")
    evaluation = pd.read_csv(folder / "lens_eval.csv")
    early = evaluation[evaluation["layer"] < evaluation["layer"].max()]
    mean_kl = early.groupby("lens")["kl_bits"].mean()
    n_tokens = int(evaluation.drop_duplicates("lang")["n_tokens"].sum())
    lines = [
        f"- Held-out text: {evaluation['lang'].nunique()} languages, {n_tokens} tokens. Mean KL to the final "
        "distribution over the layers before the last: "
        + ", ".join(f"{lens} {kl:.2f} bits" for lens, kl in mean_kl.sort_values(ascending=False).items())
        + "."
    ]
    for lens, group in verdicts.groupby("lens", sort=False):
        every = group[group["lower_at_every_layer"]]["lang"].tolist()
        verdict = "holds" if len(every) >= 5 else "does not hold"
        lines.append(
            f"- {lens}: lower KL than the logit lens at every layer before the last in {len(every)} of "
            f"{len(group)} languages ({', '.join(every) or 'none'}); the at-least-5-languages criterion {verdict}. "
            f"Layers lower, summed over languages: {int(group['layers_lower'].sum())} of {int(group['layers'].sum())}."
        )
    return lines


def _bias_lines(folder: Path) -> list[str]:
    path = folder / "lens_bias.csv"
    if not path.is_file():
        return ["- English-only vs multilingual fit: not measured."]
    bias = pd.read_csv(path)
    raised = bias[bias["en_fit_raises_p_en"]]["lang"].tolist()
    conclusion = "raises" if len(raised) > len(bias) / 2 else "does not raise"
    line = (
        f"- English-only vs multilingual linear fit at layer {int(bias['layer'].iloc[0])} (PROM's n): the English-only "
        f"fit gives a higher mean P(en) in {len(raised)} of {len(bias)} languages "
        f"({', '.join(raised) or 'none'}); mean "
        f"difference {bias['difference'].mean():+.4f} (P(en) under linear-en minus under linear). So the English-only "
        f"fit {conclusion} P(en) against the multilingual fit in most languages measured."
    )
    return [line]


def _agreement_lines(folder: Path) -> list[str]:
    path = folder / "lens_agreement.csv"
    if not path.is_file():
        return ["- PROM's decision under every lens: not measured."]
    agreement = pd.read_csv(path, keep_default_na=False)
    lenses = [c.removeprefix("pivot_") for c in agreement.columns if c.startswith("pivot_")]
    same = agreement[agreement["same_under_every_lens"].astype(str) == "True"]["lang"].tolist()
    lone = [f"{r.lang} ({r.only_under})" for r in agreement.itertuples() if r.only_under]
    line = (
        f"- PROM's decision under {', '.join(lenses)}: the same under every lens in {len(same)} of {len(agreement)} "
        f"languages ({', '.join(same) or 'none'}); a decision held under one lens only: {', '.join(lone) or 'none'}."
    )
    return [line]


def findings(results: Path) -> str:
    """Markdown findings per model folder under ``results``."""
    parts = []
    for folder in sorted(p for p in results.iterdir() if (p / "lens_eval.csv").is_file()):
        parts.append(
            f"### {folder.name}\n\n" + "\n".join(_eval_lines(folder) + _bias_lines(folder) + _agreement_lines(folder))
        )
    return "\n\n".join(parts)


def rewrite(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{findings(readme.parent)}\n{END}{tail}", encoding="utf-8")


def committed_block(readme: Path) -> str:
    return readme.read_text(encoding="utf-8").split(START, 1)[1].split(END, 1)[0].strip()
