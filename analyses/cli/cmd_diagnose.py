"""``pivotlens diagnose``: one self-contained HTML report per language, several models side by side."""

from __future__ import annotations

import typer

from analyses.cli.settings import Settings
from analyses.report.diagnosis import check_sections, diagnose
from analyses.report.html import PlotlyJs
from probes.backend.languages import parse_languages
from probes.backend.lenses import parse_lens_names
from probes.backend.store import ResultsStore


def diagnose_command(
    ctx: typer.Context,
    lang: str = typer.Option(..., help="Language(s) to diagnose, comma-separated ISO 639-1 codes: one report each."),
    models: str = typer.Option(None, help="Comma-separated models to compare side by side (default: --model)."),
    sections: str = typer.Option(None, help="Comma-separated sections (default: all registered)."),
    quick: bool = typer.Option(False, help="Smaller samples, for a first look."),
    lens: str = typer.Option(
        "logit",
        help="Lens of the lens-reading sections; several (or all) add whether PROM's decision depends on the lens.",
    ),
    plotlyjs: PlotlyJs = typer.Option(
        "inline", help="inline: self-contained pages; directory: the pages share plotly.min.js in --out."
    ),
) -> None:
    """Run (or reuse from the results store) every probe for each language and write
    report_<LANG>.html, its tables as CSV under <LANG>/ (verdicts, provenance, timings) and index.html."""
    settings: Settings = ctx.obj
    langs = parse_languages(lang)
    names = check_sections(sections.split(",") if sections else None)
    lenses = parse_lens_names(lens, allow_all=True)
    backends = [settings.load_backend(model) for model in (models.split(",") if models else [settings.model])]
    paths = diagnose(
        backends,
        langs,
        settings.out_dir,
        store=ResultsStore(settings.results),
        sections=names,
        quick=quick,
        batch_size=settings.batch_size,
        lenses=lenses,
        plotlyjs=plotlyjs,
    )
    for path in paths:
        typer.echo(f"wrote {path} (timings in {path.parent / path.stem.removeprefix('report_') / 'timings.csv'})")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose_command)
