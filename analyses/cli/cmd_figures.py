"""``pivotlens figures``: regenerate every paper figure pivotlens reproduces from stored results."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings
from analyses.figures.catalog import CATALOG, regenerate


def figures(
    ctx: typer.Context,
    results_dir: Path = typer.Option(Path("results"), help="Root of the result tables (as committed under results/)."),
    only: str = typer.Option(None, help=f"Comma-separated figure families (default all: {', '.join(CATALOG)})."),
    compute: bool = typer.Option(
        True, "--compute/--no-compute", help="Compute missing data with the family's command."
    ),
    formats: str = typer.Option("png,svg", help="Static formats beside the HTML (png, svg, pdf)."),
) -> None:
    """Every catalogued figure of --model as HTML + static images in --out, with manifest.csv/.json
    (figure -> paper -> data file and its sha256, or the command that computes missing data)."""
    settings: Settings = ctx.obj
    names = [n.strip() for n in only.split(",")] if only else None
    unknown = [n for n in names or [] if n not in CATALOG]
    if unknown:
        raise typer.BadParameter(f"unknown figure families {unknown}; known: {', '.join(CATALOG)}")
    passthrough = [
        "--backend",
        settings.backend,
        "--device",
        settings.device,
        "--dtype",
        settings.dtype,
        "--batch-size",
        str(settings.batch_size),
    ] + (["--results", settings.results] if settings.results else [])
    manifest = regenerate(
        results_dir,
        settings.model,
        settings.out_dir,
        names=names,
        compute=compute,
        global_options=passthrough,
        formats=tuple(f for f in formats.split(",") if f),
    )
    table = Table(title=f"figures of {settings.model} -> {settings.out_dir}")
    for column in ("family", "figure", "paper", "status"):
        table.add_column(column)
    for row in manifest.itertuples(index=False):
        table.add_row(str(row.family), str(row.figure or "-"), str(row.paper), str(row.status))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("figures")(figures)
