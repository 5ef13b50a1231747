"""``pivotlens figures``: regenerate every paper figure pivotlens reproduces from stored results."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings
from analyses.figures.catalog import FIGURES, RunCommand, regenerate


def figures(
    ctx: typer.Context,
    results_dir: Path = typer.Option(Path("results"), help="Root of the result tables (as committed under results/)."),
    only: str = typer.Option(None, help="Comma-separated figure families (default: all registered)."),
    compute: bool = typer.Option(
        True, "--compute/--no-compute", help="Compute missing data with the family's command."
    ),
    formats: str = typer.Option("png,svg", help="Static formats beside the HTML (png, svg, pdf)."),
) -> None:
    """Every catalogued figure of --model as HTML + static images in --out, with manifest.csv/.json
    (figure -> paper -> data file and its sha256, or the command that computes missing data)."""
    settings: Settings = ctx.obj
    names = [n.strip() for n in only.split(",")] if only else None
    registered = FIGURES.parts()
    unknown = [n for n in names or [] if n not in registered]
    if unknown:
        raise typer.BadParameter(f"unknown figure families {unknown}; registered: {', '.join(registered)}")
    manifest = regenerate(
        results_dir,
        settings.model,
        settings.out_dir,
        names=names,
        compute=in_process(settings) if compute else None,
        formats=tuple(f for f in formats.split(",") if f),
    )
    table = Table(title=f"figures of {settings.model} -> {settings.out_dir}")
    for column in ("family", "figure", "paper", "status"):
        table.add_column(column)
    for row in manifest.itertuples(index=False):
        table.add_row(str(row.family), str(row.figure or "-"), str(row.paper), str(row.status))
    Console().print(table)


def in_process(settings: Settings) -> RunCommand:
    """Runs a figure family's ``pivotlens`` command in this process, with this run's backend,
    device, dtype, batch size and results store (the family's command sets ``--model`` and ``--out``)."""
    options = [
        "--backend",
        settings.backend,
        "--device",
        settings.device,
        "--dtype",
        settings.dtype,
        "--batch-size",
        str(settings.batch_size),
        *(["--results", settings.results] if settings.results else []),
    ]

    def run(args: list[str]) -> None:
        from analyses.cli import app

        app([*options, *args], standalone_mode=False)

    return run


def register(app: typer.Typer) -> None:
    app.command("figures")(figures)
