"""``pivotlens confusion-metrics``, ``pivotlens confusion`` and ``pivotlens confusion-sweep``:
language confusion (Marchisio et al. 2024; docs/methods/language-confusion.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.pipelines.confusion import (
    Decoding,
    GenerationSettings,
    analyse,
    choose_prompts,
    run_confusion_stored,
    run_sweep,
    sweep_configs,
    write_outputs,
    write_sweep,
)
from analyses.stats.confusion_metrics import METRIC_COLUMNS, paper_table, read_completions, score_completions
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.confusion import PromptFormat, run_confusion_lens
from probes.inputs.confusion_data import LCB_ENV, TASKS, ConfusionTask, LcbDownload, locate_lcb
from probes.language_id import en_words_path, read_en_words

LCB_HELP = (
    "A download of the Language Confusion Benchmark (folder with test_sets.zip or test_sets/, and words); "
    f"default ${LCB_ENV}."
)


def _word_list(words: Path | None, download: LcbDownload | None) -> tuple[frozenset[str], str]:
    """The English word list of the word-level check and a line saying which one it is."""
    if words is not None and download is not None:
        raise PivotlensError("give --words or --lcb, not both (--lcb reads the benchmark's own words file)")
    if download is not None:
        path, what = download.words, "the benchmark's own list"
    elif words is not None:
        path, what = words, "the list given with --words"
    else:
        path, what = en_words_path(), "Debian's wamerican list (not the benchmark's; pass --lcb or --words for it)"
    try:
        vocabulary = read_en_words(path)
    except FileNotFoundError as exc:
        raise PivotlensError(str(exc)) from None
    return vocabulary, f"English word list: {path}, {what}; {len(vocabulary)} words after the benchmark's filter"


def _paper_tables(metrics: pd.DataFrame) -> str:
    """LPR, WPR and LCPR in the layout of Marchisio et al.'s Table 3 (a row per task and model)."""
    blocks = [
        f"{m.upper()} (%), Table 3 layout\n{paper_table(metrics, m).to_string(index=False)}"
        for m in ("lpr", "wpr", "lcpr")
    ]
    return "\n\n".join(blocks)


def _metrics_table(metrics: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in ("task", "model", "source", "language", "n", "LPR %", "WPR %", "LCPR %"):
        table.add_column(column, justify="right" if column[0].isupper() or column == "n" else "left")
    for row in metrics.itertuples(index=False):
        cells = ["-" if pd.isna(getattr(row, m)) else f"{100 * getattr(row, m):.1f}" for m in ("lpr", "wpr", "lcpr")]
        style = "bold" if row.source == "all" and row.language == "all" else None
        names = [str(getattr(row, c)) for c in ("task", "model", "source", "language", "n")]
        table.add_row(*names, *cells, style=style)
    return table


@dataclass(frozen=True, kw_only=True)
class MetricsOptions:
    completions: Annotated[
        Path, typer.Option(help="CSV in the benchmark's output format (id, model, completion, task, source, language).")
    ]
    words: Annotated[
        Path | None,
        typer.Option(help="English word list of the word-level check, one word a line (e.g. the benchmark's words)."),
    ] = None
    lcb: Annotated[Path | None, typer.Option(help=LCB_HELP + " Its words file is used.")] = None


@options(MetricsOptions)
def confusion_metrics(ctx: typer.Context, opts: MetricsOptions) -> None:
    """Score completions with the Language Confusion Benchmark's LPR, WPR and LCPR, written to
    confusion_metrics.csv in --out (task, model, source, language, n, lpr, wpr, lcpr; fractions in [0, 1])."""
    settings: Settings = ctx.obj
    vocabulary, which = _word_list(opts.words, None if opts.lcb is None else locate_lcb(opts.lcb))
    typer.echo(which)
    metrics = score_completions(read_completions(opts.completions), words=vocabulary)
    Console().print(_metrics_table(metrics, f"language confusion: {opts.completions.name}"))
    out = settings.out_dir / "confusion_metrics.csv"
    metrics[list(METRIC_COLUMNS)].to_csv(out, index=False)
    typer.echo(f"wrote {out}")


def _format(prompt_format: str) -> PromptFormat:
    if prompt_format not in ("qa", "chat"):
        raise PivotlensError(f"unknown --prompt-format {prompt_format!r}; use qa (Q:/A: turns) or chat (chat template)")
    return prompt_format


def _floats(spec: str, name: str) -> list[float]:
    try:
        return [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise PivotlensError(f"--{name} takes comma-separated numbers, e.g. 0,0.3,0.7 (got {spec!r})") from None


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """The options ``confusion`` and ``confusion-sweep`` share; the decoding defaults are
    :class:`GenerationSettings`'s."""

    task: Annotated[str, typer.Option(help="monolingual, crosslingual or both.")] = "both"
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Generated tokens per prompt.")] = (
        GenerationSettings.max_new_tokens
    )
    n_boot: Annotated[int, typer.Option(min=10, help="Bootstrap resamples for the 95% intervals.")] = 1000
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0

    def tasks(self) -> list[ConfusionTask]:
        if self.task == "both":
            return list(TASKS)
        if self.task not in TASKS:
            raise PivotlensError(f"unknown task {self.task!r}; use monolingual, crosslingual or both")
        return [self.task]


@dataclass(frozen=True, kw_only=True)
class ConfusionOptions(GenerationOptions):
    langs: Annotated[
        str | None,
        typer.Option(help="Comma-separated ISO 639-1 codes, e.g. fr,de,ja,zh (default with --benchmark lcb: all)."),
    ] = None
    n: Annotated[int, typer.Option(min=1, help="Authored prompts per language (the first n of the file).")] = 10
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature; 0 = greedy.")] = (
        GenerationSettings.temperature
    )
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling p.")] = GenerationSettings.top_p
    shots: Annotated[int, typer.Option(min=0, help="Few-shot demonstrations (Marchisio et al. 2024, Table 11).")] = (
        GenerationSettings.shots
    )
    num_beams: Annotated[int, typer.Option(min=1, help="Beam size (1: sampling or greedy, no beams).")] = (
        GenerationSettings.num_beams
    )
    nucleus_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="p of the recorded nucleus size.")] = (
        GenerationSettings.nucleus_p
    )
    prompt_format: Annotated[str, typer.Option(help="qa (Q:/A: turns) or chat (chat template).")] = (
        GenerationSettings.prompt_format
    )
    word_cps: Annotated[
        bool,
        typer.Option(
            "--word-cps/--line-cps",
            help="Also look for confusion points in word-error completions (default: line errors only, Nie et al.).",
        ),
    ] = False
    lens: Annotated[bool, typer.Option(help="Logit lens at the confusion points.")] = True
    benchmark: Annotated[
        str, typer.Option(help="authored (data/confusion) or lcb (the real benchmark, from --lcb).")
    ] = "authored"
    lcb: Annotated[Path | None, typer.Option(help=LCB_HELP)] = None
    datasets: Annotated[
        str | None,
        typer.Option(
            help="LCB datasets (monolingual: aya, dolly, okapi, native; cross-lingual: okapi, sharegpt, "
            "complex_prompts); default all."
        ),
    ] = None
    per_language: Annotated[
        int | None, typer.Option(min=1, help="LCB prompts drawn per dataset and language (seeded; default all).")
    ] = None

    def source(self) -> tuple[LcbDownload | None, list[str] | None, int | None]:
        """The prompt source: ``(download or None, languages, prompts per language)``."""
        if self.benchmark == "authored":
            if self.lcb is not None or self.per_language is not None:
                raise PivotlensError("--lcb and --per-language read the real benchmark; add --benchmark lcb")
            if self.langs is None:
                raise PivotlensError("--langs is needed with the authored prompts, e.g. --langs fr,de,ja,zh")
            return None, parse_languages(self.langs), self.n
        if self.benchmark != "lcb":
            raise PivotlensError(f"unknown --benchmark {self.benchmark!r}; use authored or lcb")
        return locate_lcb(self.lcb), None if self.langs is None else parse_languages(self.langs), self.per_language

    def dataset_names(self, download: LcbDownload | None) -> list[str] | None:
        """``--datasets`` as names (None: all), which only the real benchmark has."""
        names = None if self.datasets is None else [d.strip() for d in self.datasets.split(",") if d.strip()]
        if names is not None and download is None:
            raise PivotlensError("--datasets selects datasets of the real benchmark; add --benchmark lcb --lcb PATH")
        return names

    def generation(self) -> GenerationSettings:
        word_level = ("word_error",) if self.word_cps else ()
        return GenerationSettings(
            shots=self.shots,
            prompt_format=_format(self.prompt_format),
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            num_beams=self.num_beams,
            nucleus_p=self.nucleus_p,
            cp_error_types=(*GenerationSettings.cp_error_types, *word_level),
        )


@options(ConfusionOptions)
def confusion(ctx: typer.Context, opts: ConfusionOptions) -> None:
    """Generate with per-step statistics, score the completions (LPR/WPR/LCPR), find confusion
    points, compare entropy and nucleus size there vs elsewhere, and write tables and figures
    to OUT/confusion/MODEL/."""
    settings: Settings = ctx.obj
    download, chosen_langs, count = opts.source()
    names = opts.dataset_names(download)
    prompts, files = choose_prompts(opts.tasks(), chosen_langs, count, download, names)
    vocabulary, which = _word_list(None, download)
    generation = opts.generation()
    typer.echo(f"{len(prompts)} prompts; {which}")
    backend = settings.load_backend()
    steps = run_confusion_stored(
        backend,
        prompts,
        ResultsStore(settings.results),
        files,
        generation,
        seed=opts.seed,
        batch_size=settings.batch_size,
    )
    lens_table = run_confusion_lens(backend, steps, prompt_format=generation.prompt_format) if opts.lens else None
    results = analyse(steps, lens_table, words=vocabulary, n_boot=opts.n_boot, seed=opts.seed)
    folder = backend.model_name.replace("/", "_")
    out = settings.out_dir / "confusion" / (folder if download is None else f"lcb/{folder}")
    written = write_outputs(results, out)
    overall = results.metrics[(results.metrics["source"] == "all")]
    Console().print(_metrics_table(overall, f"language confusion: {backend.model_name}"))
    typer.echo(_paper_tables(results.metrics))
    n_cp = int(steps["is_confusion_point"].sum())
    typer.echo(f"{len(results.completions)} completions, {n_cp} confusion points; wrote {len(written)} files to {out}")


@dataclass(frozen=True, kw_only=True)
class SweepOptions(GenerationOptions):
    langs: Annotated[str, typer.Option(help="Comma-separated ISO 639-1 codes.")]
    n: Annotated[int, typer.Option(min=1, help="Prompts per language.")] = 5
    temperatures: Annotated[str, typer.Option(help="Temperatures (at p = 0.75, 0-shot).")] = "0,0.3,0.7,1.0"
    top_ps: Annotated[str, typer.Option(help="Top-p values (at T = 0.3, 0-shot).")] = "0.1,0.5,0.75,1.0"
    shots: Annotated[str, typer.Option(help="Few-shot counts (at T = 0.3, p = 0.75).")] = "0,1,5"
    prompt_format: Annotated[str, typer.Option(help="qa or chat.")] = GenerationSettings.prompt_format

    def configs(self) -> list[Decoding]:
        """One factor at a time: ``--temperatures``, ``--top-ps`` and ``--shots``."""
        shots = [int(k) for k in _floats(self.shots, "shots")]
        return sweep_configs(_floats(self.temperatures, "temperatures"), _floats(self.top_ps, "top-ps"), shots)

    def generation(self) -> GenerationSettings:
        return GenerationSettings(prompt_format=_format(self.prompt_format), max_new_tokens=self.max_new_tokens)


@options(SweepOptions)
def confusion_sweep(ctx: typer.Context, opts: SweepOptions) -> None:
    """Mitigation sweep: LPR/WPR/LCPR vs temperature, top-p and few-shot count, one factor at a
    time (paper Tables 8 and 11); writes OUT/confusion/MODEL/sweep.csv and sweep.html."""
    settings: Settings = ctx.obj
    prompts, files = choose_prompts(opts.tasks(), parse_languages(opts.langs), opts.n)
    configs = opts.configs()
    generation = opts.generation()
    backend = settings.load_backend()
    sweep = run_sweep(
        backend,
        prompts,
        configs,
        ResultsStore(settings.results),
        files,
        generation,
        n_boot=opts.n_boot,
        seed=opts.seed,
        batch_size=settings.batch_size,
    )
    out = settings.out_dir / "confusion" / backend.model_name.replace("/", "_")
    written = write_sweep(sweep, out)
    Console().print(_sweep_table(sweep, f"mitigation sweep: {backend.model_name}"))
    typer.echo(f"wrote {len(written)} files to {out}")


def _sweep_table(sweep: pd.DataFrame, title: str) -> Table:
    """LPR, WPR and LCPR over all sources and languages, a row per task, factor and value."""
    overall = sweep[(sweep["source"] == "all") & (sweep["language"] == "all")]
    table = Table(title=title)
    for column in ("task", "factor", "value", "LPR %", "WPR %", "LCPR %"):
        table.add_column(column)
    for row in overall.itertuples(index=False):
        cells = ["-" if pd.isna(getattr(row, m)) else f"{100 * getattr(row, m):.1f}" for m in ("lpr", "wpr", "lcpr")]
        table.add_row(str(row.task), str(row.factor), f"{row.value:g}", *cells)
    return table


def register(app: typer.Typer) -> None:
    app.command("confusion-metrics")(confusion_metrics)
    app.command("confusion")(confusion)
    app.command("confusion-sweep")(confusion_sweep)
