"""``pivotlens exit``: layer-wise exit accuracy and AdaInfer early exit (Fan et al. 2024)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings
from analyses.pipelines.exit import exit_report
from analyses.stats.flops import Uncounted, flops_model
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.lenses import load_lens, parse_lens_names
from probes.backend.store import ResultsStore, read_result
from probes.exit_accuracy import exit_accuracy, exit_run
from probes.inputs.tasks import DEMO_MODES, TASKS, get_task, load_hub_task, load_task


def _task_data(task: str, data: Path | None, hub: bool):
    if data is not None:
        return load_task(task, data) if data.suffix == ".csv" and not hub else load_hub_task(task, data)
    return load_hub_task(task) if hub else load_task(task)


def _print_summary(console: Console, report) -> None:
    layers = report.tables["layers"]
    last = layers[layers["layer"] == layers["layer"].max()]
    table = Table(title=f"{report.model}: accuracy at the last layer (the model's own) and best layer")
    for column in ("task", "lang", "n", "accuracy", "accuracy_options", "best layer (options)"):
        table.add_column(column)
    for row in last.itertuples():
        own = layers[(layers["task"] == row.task) & (layers["lang"] == row.lang)]
        best = own.loc[own["accuracy_options"].idxmax()]
        table.add_row(
            row.task,
            row.lang,
            str(row.n),
            f"{row.accuracy:.3f}",
            f"{row.accuracy_options:.3f}",
            f"{int(best['layer'])} ({best['accuracy_options']:.3f})",
        )
    console.print(table)
    gen = report.tables["generalisation"]
    table = Table(
        title="early exit on held-out items (pooled over tasks and languages; FLOPs in % of the forward pass)"
    )
    for column in ("setting", "variant", "strategy", "accuracy", "FLOPs %", "layers", "variance"):
        table.add_column(column)
    for row in gen.itertuples():
        table.add_row(
            row.setting,
            row.variant,
            row.strategy,
            f"{row.accuracy:.3f}",
            f"{row.flops_ratio:.1f}",
            f"{row.layers_mean:.1f}",
            f"{row.layers_var:.1f}",
        )
    console.print(table)
    clf = report.tables["classifiers"]
    table = Table(title="per-layer stop classification on held-out (item, layer) rows vs the majority class")
    for column in ("setting", "variant", "classifier", "accuracy", "balanced", "majority", "beats majority"):
        table.add_column(column)
    for row in clf[clf["strategy"] != "majority"].itertuples():
        table.add_row(
            row.setting,
            row.variant,
            row.strategy,
            f"{row.accuracy:.3f}",
            f"{row.balanced_accuracy:.3f}",
            f"{row.majority_accuracy:.3f}",
            "yes" if row.beats_majority else "NO",
        )
    console.print(table)


def exit_command(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help=f"Task, or a comma list: {', '.join(TASKS)}.")] = "sentiment",
    lang: Annotated[str, typer.Option(help="Language code, or a comma list (e.g. en,fr,zh).")] = "en",
    shots: Annotated[int, typer.Option(min=0, help="Demonstrations per prompt (K); 0 is zero-shot.")] = 3,
    demos: Annotated[
        str,
        typer.Option(
            help="fixed (the same K demonstrations open every prompt of a task and language, encoded once) "
            "or per-item (each item draws its own)."
        ),
    ] = "fixed",
    n: Annotated[int, typer.Option(min=1, help="Items per task and language (seeded draw).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the item draw, the demonstrations and the train/test split.")] = 0,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share of items held out to evaluate the stoppers.")
    ] = 0.5,
    data: Annotated[
        Path | None, typer.Option(help="A task file instead of data/tasks (CSV in our columns, or a hub-layout file).")
    ] = None,
    hub: Annotated[bool, typer.Option(help="Use SST-2 / AG News / MMLU through `datasets` (English).")] = False,
    transfer_from: Annotated[
        Path | None,
        typer.Option(help="Output folder of `pivotlens exit` on another model: adds the inter-model setting."),
    ] = None,
    lens: Annotated[
        str, typer.Option(help="logit, linear or tuned (a fitted lens: see pivotlens fit-lens).")
    ] = "logit",
) -> None:
    """Accuracy per layer via the logit lens, AdaInfer stopping classifiers (gap rule, SVM, CRF),
    exit accuracy and FLOPs tables, and figures, written to --out."""

    settings: Settings = ctx.obj
    tasks = [get_task(t.strip()).name for t in task.split(",") if t.strip()]
    langs = parse_languages(lang)
    (lens_name,) = parse_lens_names(lens)
    if demos not in DEMO_MODES:
        raise PivotlensError(f"--demos {demos!r} is not one of {', '.join(DEMO_MODES)}; pass --demos fixed or per-item")
    if data is not None and len(tasks) > 1:
        raise PivotlensError("--data holds one task; pass a single --task with it")
    other = None
    if transfer_from is not None:
        path = transfer_from / "exit_items.parquet"
        if not path.is_file():
            raise PivotlensError(
                f"{path} does not exist; point --transfer-from at the --out folder of another `pivotlens exit` run"
            )
        other = read_result(path)
    console = Console(stderr=True, width=150)
    backend = settings.load_backend()
    store = ResultsStore(settings.results)
    reader = load_lens(backend, lens_name)
    tables: list[pd.DataFrame] = []
    for name in tasks:
        task_data = _task_data(name, data, hub)
        for code in langs:
            run = exit_run(store, backend, task_data, code, shots=shots, n=n, seed=seed, lens=reader, demos=demos)
            tables.append(
                exit_accuracy(
                    backend,
                    name,
                    code,
                    shots=shots,
                    demos=demos,
                    n=n,
                    seed=seed,
                    data=task_data,
                    batch_size=settings.batch_size,
                    run=run,
                    lens=reader,
                )
            )
    items = pd.concat(tables, ignore_index=True)
    shape = flops_model(backend.config)
    if isinstance(shape, Uncounted):
        console.print(f"FLOPs not counted: {shape.reason}; the FLOPs columns are empty")
    report = exit_report(items, shape, backend.model_name, other_items=other, test_fraction=test_fraction, seed=seed)
    prov = {
        "command": "exit",
        "tasks": tasks,
        "langs": langs,
        "shots": shots,
        "demos": demos,
        "n": n,
        "seed": seed,
        "test_fraction": test_fraction,
        "model": backend.describe(),
        "runs": [t.attrs.get("provenance", {}) for t in tables],
        "transfer_from": str(transfer_from) if transfer_from else None,
    }
    written = report.write(settings.out_dir, prov)
    _print_summary(console, report)
    console.print(f"wrote {len(written)} files to {settings.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("exit")(exit_command)
