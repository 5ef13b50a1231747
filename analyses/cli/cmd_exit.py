"""``pivotlens exit``: layer-wise exit accuracy and AdaInfer early exit (Fan et al. 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.options import LensOption, options
from analyses.cli.settings import Settings
from analyses.pipelines.exit import exit_report
from analyses.stats.flops import Uncounted, flops_model
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.lenses import load_lens
from probes.backend.store import ResultsStore, read_result
from probes.exit_accuracy import exit_accuracy, exit_run
from probes.inputs.tasks import DEMO_MODES, TASKS, get_task, load_hub_task, load_task

if TYPE_CHECKING:
    from probes.backend import Backend
    from probes.backend.lenses import Lens


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


@dataclass(frozen=True, kw_only=True)
class ExitOptions(LensOption):
    task: Annotated[str, typer.Option(help=f"Task, or a comma list: {', '.join(TASKS)}.")] = "sentiment"
    lang: Annotated[str, typer.Option(help="Language code, or a comma list (e.g. en,fr,zh).")] = "en"
    shots: Annotated[int, typer.Option(min=0, help="Demonstrations per prompt (K); 0 is zero-shot.")] = 3
    demos: Annotated[
        str,
        typer.Option(
            help="fixed (the same K demonstrations open every prompt of a task and language, encoded once) "
            "or per-item (each item draws its own)."
        ),
    ] = "fixed"
    n: Annotated[int, typer.Option(min=1, help="Items per task and language (seeded draw).")] = 100
    seed: Annotated[int, typer.Option(help="Seed of the item draw, the demonstrations and the train/test split.")] = 0
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share of items held out to evaluate the stoppers.")
    ] = 0.5
    data: Annotated[
        Path | None, typer.Option(help="A task file instead of data/tasks (CSV in our columns, or a hub-layout file).")
    ] = None
    hub: Annotated[bool, typer.Option(help="Use SST-2 / AG News / MMLU through `datasets` (English).")] = False
    transfer_from: Annotated[
        Path | None,
        typer.Option(help="Output folder of `pivotlens exit` on another model: adds the inter-model setting."),
    ] = None

    def checked(self) -> tuple[list[str], list[str], str]:
        """The tasks, languages and lens name, every option checked before the model loads."""
        tasks = [get_task(t.strip()).name for t in self.task.split(",") if t.strip()]
        langs = parse_languages(self.lang)
        lens_name = self.lens_name()
        if self.demos not in DEMO_MODES:
            raise PivotlensError(
                f"--demos {self.demos!r} is not one of {', '.join(DEMO_MODES)}; pass --demos fixed or per-item"
            )
        if self.data is not None and len(tasks) > 1:
            raise PivotlensError("--data holds one task; pass a single --task with it")
        return tasks, langs, lens_name

    def other_items(self) -> pd.DataFrame | None:
        """The items of the ``--transfer-from`` run (None without it)."""
        if self.transfer_from is None:
            return None
        path = self.transfer_from / "exit_items.parquet"
        if not path.is_file():
            raise PivotlensError(
                f"{path} does not exist; point --transfer-from at the --out folder of another `pivotlens exit` run"
            )
        return read_result(path)


@options(ExitOptions)
def exit_command(ctx: typer.Context, opts: ExitOptions) -> None:
    """Accuracy per layer via the logit lens, AdaInfer stopping classifiers (gap rule, SVM, CRF),
    exit accuracy and FLOPs tables, and figures, written to --out."""
    settings: Settings = ctx.obj
    tasks, langs, lens_name = opts.checked()
    other = opts.other_items()
    console = Console(stderr=True, width=150)
    backend = settings.load_backend()
    tables = _exit_tables(backend, opts, tasks, langs, settings, load_lens(backend, lens_name))
    items = pd.concat(tables, ignore_index=True)
    shape = flops_model(backend.config)
    if isinstance(shape, Uncounted):
        console.print(f"FLOPs not counted: {shape.reason}; the FLOPs columns are empty")
    report = exit_report(
        items, shape, backend.model_name, other_items=other, test_fraction=opts.test_fraction, seed=opts.seed
    )
    prov = {
        "command": "exit",
        "tasks": tasks,
        "langs": langs,
        "shots": opts.shots,
        "demos": opts.demos,
        "n": opts.n,
        "seed": opts.seed,
        "test_fraction": opts.test_fraction,
        "model": backend.describe(),
        "runs": [t.attrs.get("provenance", {}) for t in tables],
        "transfer_from": str(opts.transfer_from) if opts.transfer_from else None,
    }
    written = report.write(settings.out_dir, prov)
    _print_summary(console, report)
    console.print(f"wrote {len(written)} files to {settings.out_dir}")


def _exit_tables(
    backend: Backend, opts: ExitOptions, tasks: list[str], langs: list[str], settings: Settings, reader: Lens
) -> list[pd.DataFrame]:
    """The exit-accuracy table of each task and language (each a resumable run of the store)."""
    store = ResultsStore(settings.results)
    tables: list[pd.DataFrame] = []
    for name in tasks:
        task_data = _task_data(name, opts.data, opts.hub)
        for code in langs:
            run = exit_run(
                store,
                backend,
                task_data,
                code,
                shots=opts.shots,
                n=opts.n,
                seed=opts.seed,
                lens=reader,
                demos=opts.demos,
            )
            tables.append(
                exit_accuracy(
                    backend,
                    name,
                    code,
                    shots=opts.shots,
                    demos=opts.demos,
                    n=opts.n,
                    seed=opts.seed,
                    data=task_data,
                    batch_size=settings.batch_size,
                    run=run,
                    lens=reader,
                )
            )
    return tables


def register(app: typer.Typer) -> None:
    app.command("exit")(exit_command)
