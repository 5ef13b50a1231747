"""``pivotlens diagnose``: one self-contained HTML report per language, several models side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.report.diagnosis import check_sections, diagnose
from analyses.report.html import PlotlyJs
from probes.backend.languages import parse_languages
from probes.backend.lenses import parse_lens_names
from probes.backend.store import ResultsStore


@dataclass(frozen=True, kw_only=True)
class DiagnoseOptions:
    lang: Annotated[
        str, typer.Option(help="Language(s) to diagnose, comma-separated ISO 639-1 codes: one report each.")
    ]
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models to compare side by side (default: --model).")
    ] = None
    sections: Annotated[str | None, typer.Option(help="Comma-separated sections (default: all registered).")] = None
    quick: Annotated[bool, typer.Option(help="Smaller samples, for a first look.")] = False
    lens: Annotated[
        str,
        typer.Option(
            help="Lens of the lens-reading sections; several (or all) add whether PROM's decision depends on the lens."
        ),
    ] = "logit"
    plotlyjs: Annotated[
        PlotlyJs,
        typer.Option(help="inline: self-contained pages; directory: the pages share plotly.min.js in --out."),
    ] = "inline"


@options(DiagnoseOptions)
def diagnose_command(ctx: typer.Context, opts: DiagnoseOptions) -> None:
    """Run (or reuse from the results store) every probe for each language and write
    report_<LANG>.html, its tables as CSV under <LANG>/ (verdicts, provenance, timings) and index.html."""
    settings: Settings = ctx.obj
    langs = parse_languages(opts.lang)
    names = check_sections(opts.sections.split(",") if opts.sections else None)
    lenses = parse_lens_names(opts.lens, allow_all=True)
    models = opts.models.split(",") if opts.models else [settings.model]
    paths = diagnose(
        [settings.load_backend(model) for model in models],
        langs,
        settings.out_dir,
        store=ResultsStore(settings.results),
        sections=names,
        quick=opts.quick,
        batch_size=settings.batch_size,
        lenses=lenses,
        plotlyjs=opts.plotlyjs,
    )
    for path in paths:
        typer.echo(f"wrote {path} (timings in {path.parent / path.stem.removeprefix('report_') / 'timings.csv'})")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose_command)
