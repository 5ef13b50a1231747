"""The language-confusion job shared by the CLI and the notebook: choose prompts, run the
confusion probe through the results store, and write completions, pass rates, confusion-point
tables, the lens at confusion points, the mitigation sweep and their figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyses.confusion import completions_table, cp_contrast, cp_statistics, lens_summary, table7
from analyses.confusion_metrics import METRIC_COLUMNS, compute_all_metrics, judge_completions
from analyses.figures import save_figure
from analyses.figures.confusion import cp_distribution_figure, lens_at_cp_figure, pass_rate_figure, sweep_figure
from probes.backend.errors import DataFormatError
from probes.confusion_data import (
    CROSSLINGUAL,
    FEW_SHOT,
    MONOLINGUAL,
    ConfusionPrompt,
    Task,
    load_benchmark,
    load_prompts,
    select,
)


def choose_prompts(
    tasks: list[Task], langs: list[str] | None, n: int | None, benchmark: str | Path | None = None
) -> tuple[list[ConfusionPrompt], list[str]]:
    """The first ``n`` prompts per language (and source) of each task, and the data files they
    come from (for provenance): the authored files, or the real benchmark's ``test_sets``."""
    prompts: list[ConfusionPrompt] = []
    files: list[str] = [str(FEW_SHOT)]
    for task in tasks:
        if benchmark is None:
            path = MONOLINGUAL if task == "monolingual" else CROSSLINGUAL
            loaded = load_prompts(path, task)
            files.append(str(path))
        else:
            loaded = load_benchmark(benchmark, task)
            files += [str(p) for p in sorted((Path(benchmark) / task).glob("*/*.csv"))]
        usable = None if langs is None else [lang for lang in langs if lang in {p.language for p in loaded}]
        prompts += select(loaded, usable, n)  # e.g. no English in the cross-lingual set
    missing = sorted(set(langs or ()) - {p.language for p in prompts})
    if missing:
        raise DataFormatError(
            f"no {'/'.join(tasks)} prompts in {missing}; the data has {sorted({p.language for p in loaded})}"
        )
    return prompts, files


@dataclass
class ConfusionResults:
    steps: pd.DataFrame
    completions: pd.DataFrame
    metrics: pd.DataFrame
    cp_stats: pd.DataFrame
    contrast: pd.DataFrame
    lens: pd.DataFrame | None = None
    lens_stats: pd.DataFrame | None = None
    figures: dict[str, object] = field(default_factory=dict)


def analyse(
    steps: pd.DataFrame, lens: pd.DataFrame | None = None, *, n_boot: int = 1000, seed: int = 0
) -> ConfusionResults:
    """Every table and figure of one confusion run (one model)."""
    completions = completions_table(steps)
    metrics = compute_all_metrics(judge_completions(completions), n_boot=n_boot, seed=seed)
    stats = cp_statistics(steps, n_boot=n_boot, seed=seed)
    results = ConfusionResults(steps, completions, metrics, stats, cp_contrast(steps, n_boot=n_boot, seed=seed))
    results.figures["pass_rates"] = pass_rate_figure(metrics)
    if steps["is_confusion_point"].any():
        for statistic in ("entropy_bits", "nucleus_size"):
            results.figures[f"cp_{statistic}"] = cp_distribution_figure(steps, stats, statistic)
    if lens is not None and len(lens):
        results.lens, results.lens_stats = lens, lens_summary(lens, n_boot=n_boot, seed=seed)
        results.figures["lens_at_cp"] = lens_at_cp_figure(results.lens_stats)
    return results


def write_outputs(results: ConfusionResults, out: str | Path) -> list[Path]:
    """Write the tables (CSV; the step and lens tables as Parquet) and figures (HTML + PNG)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def csv(table: pd.DataFrame, name: str) -> None:
        table.to_csv(out / name, index=False)
        written.append(out / name)

    csv(results.completions[["id", "model", "completion", "task", "source", "language"]], "completions.csv")
    csv(results.metrics[list(METRIC_COLUMNS)], "metrics.csv")
    csv(results.metrics, "metrics_with_ci.csv")
    csv(results.cp_stats, "cp_statistics.csv")
    csv(table7(results.cp_stats), "cp_table7.csv")
    csv(results.contrast, "cp_contrast.csv")
    cps = results.steps[results.steps["is_confusion_point"]]
    csv(cps.drop(columns=["completion", "input"]), "confusion_points.csv")
    results.steps.to_parquet(out / "steps.parquet", index=False)
    written.append(out / "steps.parquet")
    if results.lens is not None:
        results.lens.to_parquet(out / "lens_at_cp.parquet", index=False)
        csv(results.lens_stats, "lens_at_cp.csv")
        written.append(out / "lens_at_cp.parquet")
    for name, figure in results.figures.items():
        written += save_figure(figure, out / name)
    return written


def write_sweep(sweep: pd.DataFrame, out: str | Path) -> list[Path]:
    """The mitigation sweep's table (``sweep.csv``: every metric row of every setting) and figure."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(out / "sweep.csv", index=False)
    return [out / "sweep.csv", *save_figure(sweep_figure(sweep), out / "sweep")]
