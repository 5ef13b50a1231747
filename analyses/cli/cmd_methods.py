"""``pivotlens methods``: every method family in the registry with its probes, report sections and figures."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from analyses.figures.catalog import FIGURES
from analyses.report.sections import SECTIONS
from probes.registry import PROBES, families


def methods() -> None:
    """Every method family with its registered probes, report sections and figure families
    (pivotlens's own and those of installed packages' pivotlens.methods entry points)."""
    for shelf in (PROBES, SECTIONS, FIGURES):
        shelf.parts()
    table = Table(title="methods (pivotlens diagnose --sections, pivotlens figures --only)")
    for column in ("family", "probes", "report sections", "figure families"):
        table.add_column(column)
    for family, parts in families().items():
        table.add_row(family, *(", ".join(parts.get(kind, [])) or "-" for kind in ("probe", "section", "figures")))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("methods")(methods)
