"""The language-confusion job shared by the CLI and the notebook: choose prompts, run the
confusion probe through the results store, and write completions, pass rates, confusion-point
tables, the lens at confusion points, the mitigation sweep (LPR/WPR vs temperature, top-p and
few-shot count, one factor at a time around the benchmark's defaults; Marchisio et al. 2024,
Tables 8 and 11) and their figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analyses.figures import save_figure
from analyses.figures.confusion import cp_distribution_figure, lens_at_cp_figure, pass_rate_figure, sweep_figure
from analyses.stats.confusion_metrics import METRIC_COLUMNS, compute_all_metrics, judge_completions, paper_table
from analyses.stats.confusion_points import completions_table, cp_contrast, cp_statistics, lens_summary, table7
from probes.backend import Backend
from probes.backend.errors import DataFormatError
from probes.backend.store import ResultsStore, provenance
from probes.confusion import PromptFormat, run_confusion
from probes.inputs.confusion_data import (
    CROSSLINGUAL,
    FEW_SHOT,
    MONOLINGUAL,
    ConfusionPrompt,
    ConfusionTask,
    LcbDownload,
    load_lcb,
    load_prompts,
    select,
)


def lcb_datasets(
    download: LcbDownload, tasks: list[ConfusionTask], datasets: list[str] | None
) -> dict[ConfusionTask, list[str] | None]:
    """Which of ``datasets`` each task reads (None: all of its datasets); a name that no task
    of the benchmark has is refused with the list of those it has."""
    if datasets is None:
        return {task: None for task in tasks}
    have = {task: list(download.dataset_files(task)) for task in tasks}
    unknown = [d for d in datasets if not any(d in names for names in have.values())]
    if unknown:
        listing = "; ".join(f"{task}: {', '.join(names)}" for task, names in have.items())
        raise DataFormatError(f"the benchmark has no dataset {', '.join(map(repr, unknown))}; it has {listing}")
    return {task: [d for d in datasets if d in have[task]] for task in tasks}


def choose_prompts(
    tasks: list[ConfusionTask],
    langs: list[str] | None,
    n: int | None,
    lcb: LcbDownload | None = None,
    datasets: list[str] | None = None,
) -> tuple[list[ConfusionPrompt], list[str]]:
    """The prompts of each task and the data files they come from (for provenance). Authored
    prompts: the first ``n`` per language. The real benchmark (``lcb``): every dataset (or
    ``datasets``) and language (or ``langs``), ``n`` drawn per dataset and language
    (:func:`probes.inputs.confusion_data.load_lcb`; all when None)."""
    prompts: list[ConfusionPrompt] = []
    files: list[str] = [str(FEW_SHOT)]
    available: set[str] = set()
    chosen_datasets = lcb_datasets(lcb, tasks, datasets) if lcb is not None else {}
    for task in tasks:
        if lcb is None:
            path = MONOLINGUAL if task == "monolingual" else CROSSLINGUAL
            loaded = select(load_prompts(path, task), None, n)
            files.append(str(path))
        elif chosen_datasets[task] == []:
            continue  # e.g. --datasets aya asks nothing of the cross-lingual task
        else:
            loaded = load_lcb(lcb, task, datasets=chosen_datasets[task], per_language=n)
            files += lcb.files
        available |= {p.language for p in loaded}
        usable = None if langs is None else [lang for lang in langs if lang in {p.language for p in loaded}]
        prompts += select(loaded, usable)  # e.g. no English in the cross-lingual set
    missing = sorted(set(langs or ()) - {p.language for p in prompts})
    if missing:
        raise DataFormatError(f"no {'/'.join(tasks)} prompts in {missing}; the data has {sorted(available)}")
    return prompts, list(dict.fromkeys(files))


@dataclass
class ConfusionResults:
    steps: pd.DataFrame
    completions: pd.DataFrame
    metrics: pd.DataFrame
    cp_stats: pd.DataFrame
    contrast: pd.DataFrame
    lens: pd.DataFrame | None = None
    lens_stats: pd.DataFrame | None = None
    figures: dict[str, go.Figure] = field(default_factory=dict)


def analyse(
    steps: pd.DataFrame,
    lens: pd.DataFrame | None = None,
    *,
    words: frozenset[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> ConfusionResults:
    """Every table and figure of one confusion run (one model); ``words`` is the English word
    list of the pass rates (default: :func:`probes.language_id.en_words`)."""
    completions = completions_table(steps)
    metrics = compute_all_metrics(judge_completions(completions, words), n_boot=n_boot, seed=seed)
    stats = cp_statistics(steps, n_boot=n_boot, seed=seed)
    results = ConfusionResults(steps, completions, metrics, stats, cp_contrast(steps, n_boot=n_boot, seed=seed))
    if lens is not None and len(lens):
        results.lens, results.lens_stats = lens, lens_summary(lens, n_boot=n_boot, seed=seed)
    results.figures = confusion_figures(metrics, steps, stats, results.lens_stats)
    return results


def confusion_figures(
    metrics: pd.DataFrame, steps: pd.DataFrame, cp_stats: pd.DataFrame, lens_stats: pd.DataFrame | None = None
) -> dict[str, go.Figure]:
    """The figures of one confusion run from its tables: pass rates, the confusion points'
    entropy and nucleus size (when there are any) and the lens at confusion points (when given)."""
    figures = {"pass_rates": pass_rate_figure(metrics)}
    if steps["is_confusion_point"].any():
        for statistic in ("entropy_bits", "nucleus_size"):
            figures[f"cp_{statistic}"] = cp_distribution_figure(steps, cp_stats, statistic)
    if lens_stats is not None:
        figures["lens_at_cp"] = lens_at_cp_figure(lens_stats)
    return figures


def write_figures(out: str | Path) -> list[Path]:
    """The figures of the confusion folder ``out``, drawn from the tables :func:`write_outputs`
    and :func:`write_sweep` wrote there (HTML with plotly.js beside it, and PNG)."""
    out = Path(out)
    figures = {}
    if (out / "metrics_with_ci.csv").is_file():
        lens_stats = out / "lens_at_cp.csv"
        figures = confusion_figures(
            pd.read_csv(out / "metrics_with_ci.csv"),
            pd.read_parquet(out / "steps.parquet"),
            pd.read_csv(out / "cp_statistics.csv"),
            pd.read_csv(lens_stats) if lens_stats.is_file() else None,
        )
    if (out / "sweep.csv").is_file():
        figures["sweep"] = sweep_figure(pd.read_csv(out / "sweep.csv"))
    return [path for name, figure in figures.items() for path in save_figure(figure, out / name)]


def write_outputs(results: ConfusionResults, out: str | Path) -> list[Path]:
    """Write the tables (CSV; the step and lens tables as Parquet), then the figures drawn from
    them (:func:`write_figures`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def csv(table: pd.DataFrame, name: str) -> None:
        table.to_csv(out / name, index=False)
        written.append(out / name)

    csv(results.completions[["id", "model", "completion", "task", "source", "language"]], "completions.csv")
    csv(results.metrics[list(METRIC_COLUMNS)], "metrics.csv")
    csv(results.metrics, "metrics_with_ci.csv")
    for metric in ("lpr", "wpr", "lcpr"):
        csv(paper_table(results.metrics, metric), f"table3_{metric}.csv")
    csv(results.cp_stats, "cp_statistics.csv")
    csv(table7(results.cp_stats), "cp_table7.csv")
    csv(results.contrast, "cp_contrast.csv")
    cps = results.steps[results.steps["is_confusion_point"]]
    csv(cps.drop(columns=["completion", "input"]), "confusion_points.csv")
    results.steps.to_parquet(out / "steps.parquet", index=False)
    written.append(out / "steps.parquet")
    if results.lens is not None and results.lens_stats is not None:
        results.lens.to_parquet(out / "lens_at_cp.parquet", index=False)
        csv(results.lens_stats, "lens_at_cp.csv")
        written.append(out / "lens_at_cp.parquet")
    return written + write_figures(out)


def write_sweep(sweep: pd.DataFrame, out: str | Path) -> list[Path]:
    """The mitigation sweep's table (``sweep.csv``: every metric row of every setting), then the
    folder's figures (:func:`write_figures`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(out / "sweep.csv", index=False)
    return [out / "sweep.csv", *write_figures(out)]


# ---- mitigation sweep (paper Tables 8 and 11) --------------------------------------------------


@dataclass(frozen=True)
class Decoding:
    """One decoding setting of the sweep; ``factor`` names the knob it varies."""

    factor: str
    temperature: float
    top_p: float
    shots: int

    @property
    def value(self) -> float:
        return {"temperature": self.temperature, "top_p": self.top_p, "shots": self.shots}[self.factor]


def sweep_configs(
    temperatures: Sequence[float] = (0.0, 0.3, 0.7, 1.0),
    top_ps: Sequence[float] = (0.1, 0.5, 0.75, 1.0),
    shots: Sequence[int] = (0, 1, 5),
    *,
    default_temperature: float = 0.3,
    default_top_p: float = 0.75,
    default_shots: int = 0,
) -> list[Decoding]:
    """One factor at a time around the benchmark's defaults (T = 0.3, p = 0.75, 0-shot), as in
    the paper's Tables 8 (temperature, top-p) and 11 (few-shot)."""
    configs = [Decoding("temperature", t, default_top_p, default_shots) for t in temperatures]
    configs += [Decoding("top_p", default_temperature, p, default_shots) for p in top_ps]
    return configs + [Decoding("shots", default_temperature, default_top_p, k) for k in shots]


@dataclass(frozen=True)
class GenerationSettings:
    """How a confusion run generates: the options of :func:`probes.confusion.run_confusion`
    that key the run in the results store (decoding, not prompts)."""

    shots: int = 0
    prompt_format: PromptFormat = "qa"
    max_new_tokens: int = 100
    temperature: float = 0.3
    top_p: float = 0.75
    num_beams: int = 1
    nucleus_p: float = 0.75
    cp_error_types: tuple[str, ...] = ("full_error", "partial_error")


def run_confusion_stored(
    backend: Backend,
    prompts: Sequence[ConfusionPrompt],
    store: ResultsStore,
    data_files: Sequence[str],
    generation: GenerationSettings | None = None,
    *,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`probes.confusion.run_confusion` through the results store: one resumable run per
    generation setting, so prompts already generated with the same setting are reused."""
    options = asdict(generation or GenerationSettings())
    params = {**options, "cp_error_types": list(options["cp_error_types"])}
    run = store.run(provenance("confusion", params, backend.describe(), data_files, seed=seed))
    return run_confusion(backend, prompts, **options, seed=seed, batch_size=batch_size, run=run, progress=progress)


def run_sweep(
    backend: Backend,
    prompts: Sequence[ConfusionPrompt],
    configs: Sequence[Decoding],
    store: ResultsStore,
    data_files: Sequence[str],
    generation: GenerationSettings | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 16,
) -> pd.DataFrame:
    """LPR, WPR and LCPR (with 95% bootstrap intervals) for every decoding setting: the
    :func:`compute_all_metrics` rows plus ``factor, value, temperature, top_p, shots``.
    Each setting replaces temperature, top-p and shots in ``generation``; the rest is kept."""
    base = generation or GenerationSettings()
    frames = []
    for config in configs:
        setting = replace(base, shots=config.shots, temperature=config.temperature, top_p=config.top_p)
        steps = run_confusion_stored(backend, prompts, store, data_files, setting, seed=seed, batch_size=batch_size)
        metrics = compute_all_metrics(judge_completions(completions_table(steps)), n_boot=n_boot, seed=seed)
        frames.append(
            metrics.assign(
                factor=config.factor,
                value=config.value,
                temperature=config.temperature,
                top_p=config.top_p,
                shots=config.shots,
            )
        )
    return pd.concat(frames, ignore_index=True)
