"""``pivotlens findings``, ``pivotlens scrub-provenance`` and ``pivotlens arithmetic-data``: keeping
the committed results and data in step with the code (findings from the tables, provenance without
machine paths, the arithmetic data from its fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.report import lens_family_findings
from analyses.report.findings import RESULTS, refresh, stale_derived


@dataclass(frozen=True, kw_only=True)
class FindingsOptions:
    readmes: Annotated[
        list[Path] | None,
        typer.Argument(help="README files (default: every README under results/).", show_default=False),
    ] = None
    check: Annotated[bool, typer.Option(help="Only list the blocks that disagree with their tables (exit code 1).")] = (
        False
    )


def _lens_family_stale(readme: Path, check: bool) -> list[str]:
    """The lens-family README's block, when it disagrees with its tables (rewritten unless ``check``)."""
    if lens_family_findings.START not in readme.read_text(encoding="utf-8"):
        return []
    if lens_family_findings.committed_block(readme) == lens_family_findings.findings(readme.parent):
        return []
    if not check:
        lens_family_findings.rewrite(readme)
    return ["lens_family"]


@options(FindingsOptions)
def findings_command(ctx: typer.Context, opts: FindingsOptions) -> None:
    """Rewrite the findings blocks of the results READMEs from the tables beside them, and the tables
    derived from other tables (--check: only list what disagrees, exit code 1)."""
    readmes = opts.readmes or sorted(RESULTS.glob("**/README.md"))
    derived = stale_derived()
    for path, text in derived.items():
        if not opts.check:
            path.write_text(text, encoding="utf-8")
        typer.echo(f"{path}: {'disagrees with its source tables' if opts.check else 'rewritten'}")
    stale = refresh(readmes, check=opts.check)
    for readme in readmes:
        stale[readme] = stale.get(readme, []) + _lens_family_stale(readme, opts.check)
    for readme, keys in stale.items():
        for key in keys:
            typer.echo(f"{readme}: {key} {'disagrees with its tables' if opts.check else 'rewritten'}")
    if opts.check and (derived or any(stale.values())):
        raise typer.Exit(1)


@dataclass(frozen=True, kw_only=True)
class ScrubOptions:
    folder: Annotated[Path, typer.Argument(help="The folder whose provenance is rewritten.")] = RESULTS


@options(ScrubOptions)
def scrub_provenance_command(ctx: typer.Context, opts: ScrubOptions) -> None:
    """Rewrite machine paths out of the provenance already written under FOLDER (JSON records and
    Parquet metadata; table contents untouched) and list each file rewritten."""
    from analyses.pipelines.scrub_provenance import scrub_folder

    rewritten = scrub_folder(opts.folder)
    for path in rewritten:
        typer.echo(f"rewrote {path}")
    typer.echo(f"{len(rewritten)} files rewritten under {opts.folder}; no machine path left in their provenance")


@dataclass(frozen=True, kw_only=True)
class ArithmeticOptions:
    n_train: Annotated[int, typer.Option(min=1, help="Training problems (English).")] = 2000
    n_eval: Annotated[int, typer.Option(min=1, help="Evaluation problems per language.")] = 200


@options(ArithmeticOptions)
def arithmetic_data(ctx: typer.Context, opts: ArithmeticOptions) -> None:
    """Write train.csv and eval.csv of the arithmetic task from their fixed seeds to --out (the
    committed files: --out data/arithmetic)."""
    from probes.inputs.arithmetic import write_data

    settings: Settings = ctx.obj
    for path in write_data(settings.out, n_train=opts.n_train, n_eval=opts.n_eval):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("findings")(findings_command)
    app.command("scrub-provenance")(scrub_provenance_command)
    app.command("arithmetic-data")(arithmetic_data)
