"""``pivotlens diagnose``: one self-contained HTML report per language, several models side by side."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import analyses.report
from analyses.cli.settings import Settings
from analyses.report import SECTIONS, ReportContext
from analyses.report.html import render_report
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore


def _load_sections() -> None:
    for module in pkgutil.iter_modules(analyses.report.__path__):
        if module.name.endswith("_section"):
            importlib.import_module(f"analyses.report.{module.name}")


def diagnose(
    ctx: typer.Context,
    lang: str = typer.Option(..., help="Language to diagnose (ISO 639-1)."),
    models: str = typer.Option(None, help="Comma-separated models to compare side by side (default: --model)."),
    sections: str = typer.Option(None, help="Comma-separated sections (default: all registered)."),
    quick: bool = typer.Option(False, help="Smaller samples, for a first look."),
) -> None:
    """Run (or reuse from the results store) every probe for LANG and write report_<LANG>.html plus its tables as CSV."""
    settings: Settings = ctx.obj
    parse_languages([lang])
    _load_sections()
    names = sections.split(",") if sections else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; registered: {', '.join(SECTIONS)}")
    store = ResultsStore(settings.results)
    per_model = {}
    for model in (models.split(",") if models else [settings.model]):
        backend = settings.load_backend(model)
        context = ReportContext(backend, lang, store, quick=quick, batch_size=settings.batch_size)
        per_model[backend.model_name] = [SECTIONS[name](context) for name in names]
    path = render_report(lang, per_model, settings.out_dir)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose)
