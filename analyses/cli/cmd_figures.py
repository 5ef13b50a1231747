"""``pivotlens figures``: regenerate every paper figure pivotlens reproduces from stored results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.figures.catalog import FIGURES, RunCommand, regenerate


@dataclass(frozen=True, kw_only=True)
class FiguresOptions:
    results_dir: Annotated[Path, typer.Option(help="Root of the result tables (as committed under results/).")] = Path(
        "results"
    )
    only: Annotated[str | None, typer.Option(help="Comma-separated figure families (default: all registered).")] = None
    compute: Annotated[bool, typer.Option(help="Compute missing data with the family's command.")] = True
    formats: Annotated[str, typer.Option(help="Static formats beside the HTML (png, svg, pdf).")] = "png,svg"

    def families(self) -> list[str] | None:
        """``--only`` as registered figure families (None: all)."""
        names = [n.strip() for n in self.only.split(",")] if self.only else None
        registered = FIGURES.parts()
        unknown = [n for n in names or [] if n not in registered]
        if unknown:
            raise typer.BadParameter(f"unknown figure families {unknown}; registered: {', '.join(registered)}")
        return names


@options(FiguresOptions)
def figures(ctx: typer.Context, opts: FiguresOptions) -> None:
    """Every catalogued figure of --model as HTML + static images in --out, with manifest.csv/.json
    (figure -> paper -> data file and its sha256, or the command that computes missing data)."""
    settings: Settings = ctx.obj
    manifest = regenerate(
        opts.results_dir,
        settings.model,
        settings.out_dir,
        names=opts.families(),
        compute=in_process(settings) if opts.compute else None,
        formats=tuple(f for f in opts.formats.split(",") if f),
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
