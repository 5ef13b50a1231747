"""Report section: how often the model drifts out of the language, and where (Marchisio et al.
2024, LPR/WPR/LCPR; confusion points of Nie et al. 2025; spec section 3)."""

from __future__ import annotations

import pandas as pd

from analyses.pipelines.confusion import GenerationSettings, analyse, choose_prompts, run_confusion_stored
from analyses.report.sections import ReportContext, SectionResult, Verdict, register_section
from probes.backend.errors import DataFormatError
from probes.language_id import WORD_LEVEL_LANGUAGES


def _interval(row: pd.Series, metric: str) -> str:
    return f"[{row[f'{metric}_low']:.2f}, {row[f'{metric}_high']:.2f}]" if pd.notna(row[metric]) else "not scored"


@register_section("confusion", order=60)
def confusion_section(ctx: ReportContext) -> SectionResult:
    result = SectionResult("Language confusion (LCB pass rates, confusion points)")
    prompts, files = [], []
    for task in ("monolingual", "crosslingual"):
        try:
            chosen, used = choose_prompts([task], [ctx.lang], 4 if ctx.quick else 15)
        except DataFormatError as exc:
            result.notes.append(str(exc))
            continue
        prompts += chosen
        files += used
    if not prompts:
        return result
    generation = GenerationSettings(max_new_tokens=40 if ctx.quick else 80)
    steps = run_confusion_stored(
        ctx.backend, prompts, ctx.store, sorted(set(files)), generation, batch_size=ctx.batch_size, progress=False
    )
    results = analyse(steps, n_boot=200 if ctx.quick else 1000)
    overall = results.metrics[(results.metrics["source"] == "all") & (results.metrics["language"] == ctx.lang)]
    for row in overall.sort_values("task").itertuples(index=False):
        row = pd.Series(row._asdict())
        task = "answering in the language asked" if row["task"] == "monolingual" else "asked in English to answer in it"
        lpr = f"{row['lpr']:.2f}" if pd.notna(row["lpr"]) else "-"
        wpr = f"{row['wpr']:.2f}" if pd.notna(row["wpr"]) else "not scored"
        result.verdicts.append(
            Verdict(
                f"How often does it stay in {ctx.lang} ({row['task']}: {task})?",
                f"line-level pass rate {lpr}, word-level {wpr}",
                f"{int(row['n'])} prompts, up to {generation.max_new_tokens} tokens, T = {generation.temperature}, "
                f"top-p = {generation.top_p}; fastText language ID per line (LPR), English words (WPR, scored only for "
                f"{', '.join(WORD_LEVEL_LANGUAGES)}, as in the benchmark)",
                f"95% bootstrap intervals: LPR {_interval(row, 'lpr')}, WPR {_interval(row, 'wpr')}",
            )
        )
    stats = results.cp_stats
    entropy = stats[(stats["statistic"] == "entropy_bits") & (stats["group"] == "has_cp")]
    at_cp, elsewhere = entropy[entropy["position"] == "at_cp"], entropy[entropy["position"] == "not_at_cp"]
    n_cp = int(steps["is_confusion_point"].sum())
    if n_cp and len(at_cp) and len(elsewhere):
        a, b = at_cp["mean"].mean(), elsewhere["mean"].mean()
        result.verdicts.append(
            Verdict(
                "Is the model uncertain where it drifts (confusion points)?",
                f"{'yes' if a > b else 'no'}: {a:.1f} bits at confusion points vs {b:.1f} elsewhere",
                f"{n_cp} confusion points (first token of a line in the wrong language; Nie et al. 2025)",
                "per-task 95% cluster-bootstrap intervals in the table cp_statistics",
            )
        )
    completions = results.completions
    examples = completions[completions["error_type"] != "correct"][["task", "error_type", "has_cp", "completion"]]
    result.figures.append(results.figures["pass_rates"])
    if "cp_entropy_bits" in results.figures:
        result.figures.append(results.figures["cp_entropy_bits"])
    result.tables = {
        "confusion_metrics": results.metrics,
        "cp_statistics": stats,
        "confusion_examples": examples.head(5),
    }
    result.shown = ["confusion_examples"]
    return result
