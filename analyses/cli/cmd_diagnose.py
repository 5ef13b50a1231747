"""``pivotlens diagnose``: one self-contained HTML report per language, several models side by side."""

from __future__ import annotations

import time

import typer
from tqdm import tqdm

from analyses.cli.settings import Settings
from analyses.report import SECTIONS, ReportContext, ordered_sections
from analyses.report.html import render_report
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore


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
    registered = ordered_sections()
    names = sections.split(",") if sections else registered
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; registered: {', '.join(SECTIONS)}")
    store = ResultsStore(settings.results)
    per_model, timings = {}, []
    model_names = models.split(",") if models else [settings.model]
    with tqdm(total=len(model_names) * len(names), desc=f"diagnose {lang}", unit="section") as bar:
        for model in model_names:
            backend = settings.load_backend(model)
            context = ReportContext(backend, lang, store, quick=quick, batch_size=settings.batch_size)
            results = []
            for name in names:
                bar.set_postfix_str(f"{backend.model_name}: {name}")
                start = time.perf_counter()
                results.append(SECTIONS[name](context))
                timings.append(f"{backend.model_name}/{name} {time.perf_counter() - start:.0f} s")
                bar.update()
            per_model[backend.model_name] = results
    path = render_report(lang, per_model, settings.out_dir)
    typer.echo(f"wrote {path} ({', '.join(timings)})")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose)
