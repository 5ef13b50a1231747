"""``pivotlens confusion-metrics``, ``pivotlens confusion`` and ``pivotlens confusion-sweep``:
language confusion (Marchisio et al. 2024; docs/methods/language-confusion.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings, check_writable
from analyses.stats.confusion_metrics import METRIC_COLUMNS, paper_table, read_completions, score_completions
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.inputs.confusion_data import LCB_ENV, TASKS, LcbDownload, Task, locate_lcb
from probes.language_id import en_words_path, read_en_words

if TYPE_CHECKING:
    from probes.confusion import PromptFormat

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


def confusion_metrics(
    completions: Path = typer.Option(
        ...,
        "--completions",
        help="CSV in the benchmark's output format (id, model, completion, task, source, language).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write the metrics (task, model, source, language, n, lpr, wpr, lcpr; fractions in [0, 1]) to this CSV.",
    ),
    words: Path | None = typer.Option(
        None, "--words", help="English word list of the word-level check, one word a line (e.g. the benchmark's words)."
    ),
    lcb: Path | None = typer.Option(None, "--lcb", help=LCB_HELP + " Its words file is used."),
) -> None:
    """Score completions with the Language Confusion Benchmark's LPR, WPR and LCPR."""
    if out is not None:
        check_writable(out.parent, "--out")
    vocabulary, which = _word_list(words, None if lcb is None else locate_lcb(lcb))
    typer.echo(which)
    metrics = score_completions(read_completions(completions), words=vocabulary)
    Console().print(_metrics_table(metrics, f"language confusion: {completions.name}"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        metrics[list(METRIC_COLUMNS)].to_csv(out, index=False)
        typer.echo(f"wrote {out}")


def _tasks(task: str) -> list[Task]:
    if task == "both":
        return list(TASKS)
    if task not in TASKS:
        raise PivotlensError(f"unknown task {task!r}; use monolingual, crosslingual or both")
    return [task]


def _format(prompt_format: str) -> PromptFormat:
    if prompt_format not in ("qa", "chat"):
        raise PivotlensError(f"unknown --prompt-format {prompt_format!r}; use qa (Q:/A: turns) or chat (chat template)")
    return prompt_format


def _floats(spec: str, name: str) -> list[float]:
    try:
        return [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise PivotlensError(f"--{name} takes comma-separated numbers, e.g. 0,0.3,0.7 (got {spec!r})") from None


def _source(
    benchmark: str, lcb: Path | None, langs: str | None, n: int, per_language: int | None
) -> tuple[LcbDownload | None, list[str] | None, int | None]:
    """The prompt source: ``(download or None, languages, prompts per language)``."""
    if benchmark == "authored":
        if lcb is not None or per_language is not None:
            raise PivotlensError("--lcb and --per-language read the real benchmark; add --benchmark lcb")
        if langs is None:
            raise PivotlensError("--langs is needed with the authored prompts, e.g. --langs fr,de,ja,zh")
        return None, parse_languages(langs), n
    if benchmark != "lcb":
        raise PivotlensError(f"unknown --benchmark {benchmark!r}; use authored or lcb")
    return locate_lcb(lcb), None if langs is None else parse_languages(langs), per_language


def confusion(
    ctx: typer.Context,
    langs: str | None = typer.Option(
        None, "--langs", help="Comma-separated ISO 639-1 codes, e.g. fr,de,ja,zh (default with --benchmark lcb: all)."
    ),
    task: str = typer.Option("both", "--task", help="monolingual, crosslingual or both."),
    n: int = typer.Option(10, "--n", min=1, help="Authored prompts per language (the first n of the file)."),
    temperature: float = typer.Option(0.3, "--temperature", min=0.0, help="Sampling temperature; 0 = greedy."),
    top_p: float = typer.Option(0.75, "--top-p", min=0.0, max=1.0, help="Nucleus sampling p."),
    shots: int = typer.Option(0, "--shots", min=0, help="Few-shot demonstrations (Marchisio et al. 2024, Table 11)."),
    num_beams: int = typer.Option(1, "--num-beams", min=1, help="Beam size (1: sampling or greedy, no beams)."),
    max_new_tokens: int = typer.Option(100, "--max-new-tokens", min=1, help="Generated tokens per prompt."),
    nucleus_p: float = typer.Option(0.75, "--nucleus-p", min=0.0, max=1.0, help="p of the recorded nucleus size."),
    prompt_format: str = typer.Option("qa", "--prompt-format", help="qa (Q:/A: turns) or chat (chat template)."),
    word_cps: bool = typer.Option(
        False,
        "--word-cps/--line-cps",
        help="Also look for confusion points in word-error completions (default: line errors only, Nie et al.).",
    ),
    lens: bool = typer.Option(True, "--lens/--no-lens", help="Logit lens at the confusion points."),
    benchmark: str = typer.Option(
        "authored", "--benchmark", help="authored (data/confusion) or lcb (the real benchmark, from --lcb)."
    ),
    lcb: Path | None = typer.Option(None, "--lcb", help=LCB_HELP),
    datasets: str | None = typer.Option(
        None,
        "--datasets",
        help="LCB datasets (monolingual: aya, dolly, okapi, native; cross-lingual: okapi, sharegpt, complex_prompts); "
        "default all.",
    ),
    per_language: int | None = typer.Option(
        None, "--per-language", min=1, help="LCB prompts drawn per dataset and language (seeded; default all)."
    ),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
) -> None:
    """Generate with per-step statistics, score the completions (LPR/WPR/LCPR), find confusion
    points, compare entropy and nucleus size there vs elsewhere, and write tables and figures
    to OUT/confusion/MODEL/."""
    from analyses.pipelines.confusion import (
        GenerationSettings,
        analyse,
        choose_prompts,
        run_confusion_stored,
        write_outputs,
    )
    from probes.backend.store import ResultsStore
    from probes.confusion import run_confusion_lens

    settings: Settings = ctx.obj
    download, chosen_langs, count = _source(benchmark, lcb, langs, n, per_language)
    names = None if datasets is None else [d.strip() for d in datasets.split(",") if d.strip()]
    if names is not None and download is None:
        raise PivotlensError("--datasets selects datasets of the real benchmark; add --benchmark lcb --lcb PATH")
    prompts, files = choose_prompts(_tasks(task), chosen_langs, count, download, names)
    vocabulary, which = _word_list(None, download)
    typer.echo(f"{len(prompts)} prompts; {which}")
    backend = settings.load_backend()
    cp_types = ("full_error", "partial_error", "word_error") if word_cps else ("full_error", "partial_error")
    generation = GenerationSettings(
        shots=shots,
        prompt_format=_format(prompt_format),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        num_beams=num_beams,
        nucleus_p=nucleus_p,
        cp_error_types=cp_types,
    )
    steps = run_confusion_stored(
        backend, prompts, ResultsStore(settings.results), files, generation, seed=seed, batch_size=settings.batch_size
    )
    lens_table = run_confusion_lens(backend, steps, prompt_format=generation.prompt_format) if lens else None
    results = analyse(steps, lens_table, words=vocabulary, n_boot=n_boot, seed=seed)
    folder = backend.model_name.replace("/", "_")
    out = settings.out_dir / "confusion" / (folder if download is None else f"lcb/{folder}")
    written = write_outputs(results, out)
    overall = results.metrics[(results.metrics["source"] == "all")]
    console = Console()
    console.print(_metrics_table(overall, f"language confusion: {backend.model_name}"))
    typer.echo(_paper_tables(results.metrics))
    n_cp = int(steps["is_confusion_point"].sum())
    typer.echo(f"{len(results.completions)} completions, {n_cp} confusion points; wrote {len(written)} files to {out}")


def confusion_sweep(
    ctx: typer.Context,
    langs: str = typer.Option(..., "--langs", help="Comma-separated ISO 639-1 codes."),
    task: str = typer.Option("both", "--task", help="monolingual, crosslingual or both."),
    n: int = typer.Option(5, "--n", min=1, help="Prompts per language."),
    temperatures: str = typer.Option("0,0.3,0.7,1.0", "--temperatures", help="Temperatures (at p = 0.75, 0-shot)."),
    top_ps: str = typer.Option("0.1,0.5,0.75,1.0", "--top-ps", help="Top-p values (at T = 0.3, 0-shot)."),
    shots: str = typer.Option("0,1,5", "--shots", help="Few-shot counts (at T = 0.3, p = 0.75)."),
    max_new_tokens: int = typer.Option(100, "--max-new-tokens", min=1, help="Generated tokens per prompt."),
    prompt_format: str = typer.Option("qa", "--prompt-format", help="qa or chat."),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
) -> None:
    """Mitigation sweep: LPR/WPR/LCPR vs temperature, top-p and few-shot count, one factor at a
    time (paper Tables 8 and 11); writes OUT/confusion/MODEL/sweep.csv and sweep.html."""
    from analyses.pipelines.confusion import GenerationSettings, choose_prompts, run_sweep, sweep_configs, write_sweep
    from probes.backend.store import ResultsStore

    settings: Settings = ctx.obj
    prompts, files = choose_prompts(_tasks(task), parse_languages(langs), n)
    configs = sweep_configs(
        _floats(temperatures, "temperatures"), _floats(top_ps, "top-ps"), [int(k) for k in _floats(shots, "shots")]
    )
    backend = settings.load_backend()
    sweep = run_sweep(
        backend,
        prompts,
        configs,
        ResultsStore(settings.results),
        files,
        GenerationSettings(prompt_format=_format(prompt_format), max_new_tokens=max_new_tokens),
        n_boot=n_boot,
        seed=seed,
        batch_size=settings.batch_size,
    )
    out = settings.out_dir / "confusion" / backend.model_name.replace("/", "_")
    written = write_sweep(sweep, out)
    overall = sweep[(sweep["source"] == "all") & (sweep["language"] == "all")]
    table = Table(title=f"mitigation sweep: {backend.model_name}")
    for column in ("task", "factor", "value", "LPR %", "WPR %", "LCPR %"):
        table.add_column(column)
    for row in overall.itertuples(index=False):
        cells = ["-" if pd.isna(getattr(row, m)) else f"{100 * getattr(row, m):.1f}" for m in ("lpr", "wpr", "lcpr")]
        table.add_row(str(row.task), str(row.factor), f"{row.value:g}", *cells)
    Console().print(table)
    typer.echo(f"wrote {len(written)} files to {out}")


def register(app: typer.Typer) -> None:
    app.command("confusion-metrics")(confusion_metrics)
    app.command("confusion")(confusion)
    app.command("confusion-sweep")(confusion_sweep)
