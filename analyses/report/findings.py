"""Findings of the results READMEs, written from the committed tables.

A README states a finding between markers::

    <!-- findings:lens:gemma-3-270m -->
    ...generated text...
    <!-- /findings -->

``python -m analyses.report.findings`` rewrites every such block of ``results/*/README.md``
from the tables beside it; ``--check`` only lists the blocks that disagree with their tables
(exit code 1), which is what the test suite runs. Prose outside the markers states no numbers.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analyses.stats.prom_lambda import verdict

RESULTS = Path(__file__).resolve().parents[2] / "results"
BLOCK = re.compile(
    r"(?P<open><!-- findings:(?P<key>[\w.:-]+) -->\n)(?P<body>.*?)(?P<close><!-- /findings -->)", re.DOTALL
)


def _langs(values) -> str:
    return ", ".join(sorted(values)) or "none"


def _protocol(lambdas: pd.DataFrame) -> str:
    if "task" not in lambdas:
        return "translation prompts (tables written before the task and shot columns existed)"
    parts = sorted({f"{r.task}, {r.shots}-shot" for r in lambdas.itertuples()})
    sources = sorted(set(lambdas["src_lang"]))
    source = "each target language itself" if set(lambdas["task"]) == {"cloze"} else ", ".join(sources)
    return f"{'; '.join(parts)} prompts, source {source}"


def _decisions(lambdas: pd.DataFrame) -> dict[str, list[str]]:
    """Languages by decision: lambda0 decided, 0 decided, borderline, undecided (empty lens)."""
    groups: dict[str, list[str]] = {}
    for _, row in lambdas.iterrows():
        groups.setdefault(verdict(row).split(" (nearest")[0] if pd.isna(row["lambda"]) else verdict(row), []).append(
            row["lang"]
        )
    return groups


def lambda_sentence(lambdas: pd.DataFrame) -> str:
    """``At layer 13 (...): lambda = 0.1 for ar, bn; lambda = 0 for es; ...``."""
    layers = sorted(set(lambdas["layer"]))
    groups = "; ".join(f"{key}: {_langs(langs)}" for key, langs in sorted(_decisions(lambdas).items()))
    larger = lambdas[["mean_p_en", "mean_p_target"]].max(axis=1)
    low, high = lambdas.iloc[larger.argmin()], lambdas.iloc[larger.argmax()]
    return (
        f"PROM's rule at layer n = {', '.join(map(str, layers))} on {_protocol(lambdas)}: {groups}. "
        f"There, the larger of mean P(en) and mean P(target) ranges from {larger.min():.2g} ({low['lang']}) "
        f"to {larger.max():.2g} ({high['lang']})."
    )


def lens_findings(folder: Path) -> str:
    """Peak and overtake layers, final target probabilities and PROM's decisions of one sweep."""
    lambdas = pd.read_csv(folder / "lambda.csv")
    summary = pd.read_csv(folder / "pivot_summary.csv")
    peaks = summary["latent_peak_layer"].value_counts()
    mode = int(peaks.index[0])
    others = summary[summary["latent_peak_layer"] != mode]
    overtakes = summary[summary["overtake_layer"] >= 0]
    never = summary[summary["overtake_layer"] < 0]["lang"]
    top = summary.iloc[summary["final_p_target"].argmax()]
    lines = [
        f"- {len(summary)} target languages; {int(lambdas['n'].sum())} prompts at layer n.",
        f"- P(en) peaks at layer {mode} for {int(peaks.iloc[0])} of {len(summary)} languages"
        + (
            "; elsewhere: "
            + ", ".join(f"{r.lang} {r.latent_peak_layer}" for r in others.sort_values("lang").itertuples())
            if len(others)
            else ""
        )
        + ".",
        (
            f"- The target overtakes English after the peak for {len(overtakes)} languages, at layers "
            f"{overtakes['overtake_layer'].min()}-{overtakes['overtake_layer'].max()}; never for: {_langs(never)}."
            if len(overtakes)
            else f"- The target never overtakes English after the peak ({_langs(never)})."
        ),
        (
            f"- At the output, mean P(target) ranges from {summary['final_p_target'].min():.2g} to "
            f"{summary['final_p_target'].max():.2g} ({top['lang']})."
        ),
        f"- {lambda_sentence(lambdas)}",
    ]
    return "\n".join(lines) + "\n"


def decision_changes(folder: Path) -> str:
    """Before/after table of the languages whose decision changed between the translation sweep
    (``lambda_before_prom_protocol.csv``, French source, 4 demonstrations, prefix sets) and the
    current ``lambda.csv``."""
    before, after = pd.read_csv(folder / "lambda_before_prom_protocol.csv"), pd.read_csv(folder / "lambda.csv")
    if "task" not in after:
        return "The sweep has not been re-run under PROM's protocol yet: `lambda.csv` is still the translation sweep.\n"
    was = {row["lang"]: verdict(row) for _, row in before.iterrows()}
    now = {row["lang"]: (verdict(row), row) for _, row in after.iterrows()}
    rows = [
        f"| {lang} | {was[lang]} | {text} | {row['n']} | {row['n_dropped_copy']} | {row['share_chain']:.0%} |"
        for lang, (text, row) in sorted(now.items())
        if lang in was and was[lang] != text
    ]
    if not rows:
        return "No decision changed.\n"
    header = (
        "| lang | translation, fr source, 4-shot | now | n | dropped as copies | scored by chain |\n"
        "|---|---|---|---:|---:|---:|\n"
    )
    return header + "\n".join(rows) + "\n"


def reports_lambda_findings(root: Path) -> str:
    """PROM's decision per model over the languages of the diagnosis reports."""
    lines = []
    for model in sorted({p.name.split("__")[0] for p in root.glob("*/*__lambda.csv")}):
        lambdas = pd.concat([pd.read_csv(p) for p in sorted(root.glob(f"*/{model}__lambda.csv"))], ignore_index=True)
        lines.append(f"- {model}: {lambda_sentence(lambdas)}")
    return "\n".join(lines) + "\n"


GENERATORS: dict[str, Callable[[str, Path], str]] = {
    "lens": lambda model, results: lens_findings(results / "lens" / model),
    "changes": lambda model, results: decision_changes(results / "lens" / model),
    "reports": lambda what, results: {"lambda": reports_lambda_findings}[what](results / "reports"),
}


def generate(key: str, results: Path = RESULTS) -> str:
    kind, _, argument = key.partition(":")
    if kind not in GENERATORS:
        raise KeyError(f"unknown findings block {key!r}; known kinds: {', '.join(GENERATORS)}")
    return GENERATORS[kind](argument, results)


def render(readme: Path, results: Path = RESULTS) -> str:
    """The README's text with every findings block regenerated from the tables."""
    return BLOCK.sub(lambda m: m["open"] + generate(m["key"], results) + m["close"], readme.read_text(encoding="utf-8"))


def stale_blocks(readme: Path, results: Path = RESULTS) -> list[str]:
    """Keys of the blocks whose text differs from what the tables say."""
    text = readme.read_text(encoding="utf-8")
    return [m["key"] for m in BLOCK.finditer(text) if m["body"] != generate(m["key"], results)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("readmes", nargs="*", type=Path, help="README files (default: results/*/README.md)")
    parser.add_argument("--check", action="store_true", help="only list blocks that disagree with the tables")
    args = parser.parse_args(argv)
    readmes = args.readmes or sorted(RESULTS.glob("*/README.md"))
    stale = {readme: stale_blocks(readme) for readme in readmes}
    for readme, keys in stale.items():
        if keys and not args.check:
            readme.write_text(render(readme), encoding="utf-8")
        for key in keys:
            print(f"{readme}: {key} {'disagrees with its tables' if args.check else 'rewritten'}")
    return 1 if args.check and any(stale.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
