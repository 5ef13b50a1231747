"""Diagnose languages x models: run every registered report section (each probe through the
results store, so a re-run reuses finished work) and write each language's page as soon as that
language is done, so an interrupted run keeps every finished report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analyses.report.html import PlotlyJs, render_report, write_index
from analyses.report.sections import SECTIONS, ReportContext, SectionResult, ordered_sections
from probes.backend import Backend
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore, code_version, file_sha256, write_text_atomic
from probes.inputs import DATA_DIR

TIMING_COLUMNS = {
    "model": "model name",
    "lang": "diagnosed language",
    "section": "report section",
    "seconds": "wall time of the section (s)",
    "computed": "True when the section stored new results, False when it only read the results store",
}


def check_sections(names: Sequence[str] | None) -> list[str]:
    """The sections to run, in page order (all registered ones by default); unknown names raise."""
    registered = ordered_sections()
    if not names:
        return registered
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise PivotlensError(f"unknown report sections {unknown}; registered: {', '.join(registered)}")
    return [n for n in registered if n in names]


def data_versions() -> dict[str, str]:
    """sha256 of every data file pivotlens ships (the sections' own runs record the ones they read)."""
    return {str(path.relative_to(DATA_DIR)): file_sha256(path) for path in sorted(DATA_DIR.rglob("*.csv"))}


def _stored_files(store: ResultsStore) -> int:
    return sum(1 for _ in store.root.rglob("*.parquet")) if store.root.is_dir() else 0


def diagnose(
    backends: Sequence[Backend],
    langs: Sequence[str],
    out: Path,
    *,
    store: ResultsStore | None = None,
    sections: Sequence[str] | None = None,
    quick: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    lenses: Sequence[str] = ("logit",),
    plotlyjs: PlotlyJs = "inline",
) -> list[Path]:
    """Write ``out/report_<lang>.html`` per language (``backends`` side by side), its tables,
    verdicts, provenance and ``timings.csv`` (:data:`TIMING_COLUMNS`) under ``out/<lang>/``, and
    ``out/index.html`` over every report in ``out``. The pages inline plotly.js, or with
    ``plotlyjs="directory"`` share ``out/plotly.min.js``. Returns the report paths."""
    langs = parse_languages(list(langs))
    names = check_sections(sections)
    store = store or ResultsStore()
    models = {backend.model_name: backend.describe() for backend in backends}
    data = data_versions()
    paths = []
    with tqdm(
        total=len(langs) * len(backends) * len(names), desc="diagnose", unit="section", disable=not progress
    ) as bar:
        for lang in langs:
            per_model: dict[str, list[SectionResult]] = {}
            timings = []
            for backend in backends:
                context = ReportContext(backend, lang, store, quick=quick, batch_size=batch_size, lenses=tuple(lenses))
                results = []
                for name in names:
                    bar.set_postfix_str(f"{lang} {backend.model_name}: {name}")
                    before, start = _stored_files(store), time.perf_counter()
                    results.append(SECTIONS.get(name).run(context))
                    timings.append(
                        {
                            "model": backend.model_name,
                            "lang": lang,
                            "section": name,
                            "seconds": round(time.perf_counter() - start, 1),
                            "computed": _stored_files(store) > before,
                        }
                    )
                    bar.update()
                per_model[backend.model_name] = results
            prov = {
                "models": models,
                "code": code_version(),
                "data": data,
                "quick": quick,
                "sections": names,
                "results_store": str(store.root),
            }
            path = render_report(lang, per_model, out, provenance=prov, plotlyjs=plotlyjs)
            write_text_atomic(pd.DataFrame(timings).to_csv(index=False), out / lang / "timings.csv")
            paths.append(path)
            write_index(out)
    return paths
