"""Render a diagnosis report as one HTML page per language, models side by side, from the jinja2
templates of ``analyses/report/templates`` (autoescaped: only the trusted fragments below, the
figures, tables, style and plotly.js, are marked safe), and write its tables, verdicts and
provenance beside it. plotly.js is inlined, so the page works offline on its own, or with
``plotlyjs="directory"`` loaded from ``plotly.min.js`` beside it, shared by the folder's pages
(plotly's ``include_plotlyjs="directory"``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import jinja2
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from analyses.figures.explore import explorer_page
from analyses.figures.io import PLOTLYJS_FILE, figure_id, write_plotlyjs
from analyses.report.sections import SectionResult
from probes.backend.store import write_text_atomic

VERDICT_COLUMNS = {
    "lang": "diagnosed language",
    "model": "model name",
    "section": "report section title",
    "question": "what the verdict answers",
    "answer": "the answer",
    "evidence": "the measurement behind it",
    "uncertainty": "how sure it is (intervals, borderline flags)",
}

#: Where a page gets plotly.js: ``inline`` (self-contained) or ``directory`` (``plotly.min.js``
#: beside it, written once per folder).
PlotlyJs = Literal["inline", "directory"]

_STYLE = Markup("""
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.models { display: grid; grid-template-columns: repeat(var(--n), minmax(0, 1fr)); gap: 1.5em; }
table.verdicts { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
table.verdicts td, table.verdicts th { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; font-size: 0.9em;
  text-align: left; }
.answer { font-weight: 600; }
h2 { border-bottom: 2px solid #1f77b4; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.85em; }
.note { color: #8a5a00; font-size: 0.9em; }
""")


def _figure_html(fig: go.Figure, place: str) -> Markup:
    """The figure at its own height and the column's width (a fixed width would overflow the
    side-by-side columns), with a div id from its content and its ``place`` on the page."""
    fitted = go.Figure(fig).update_layout(width=None, autosize=True)
    return Markup(
        fitted.to_html(
            full_html=False,
            div_id=f"{figure_id(fitted)}-{place}",
            include_plotlyjs=False,
            default_width="100%",
            default_height=f"{fig.layout.height or 450}px",
            config={"responsive": True},
        )
    )


def _table_html(table: pd.DataFrame) -> Markup:
    """The table as HTML (pandas escapes its cells)."""
    return Markup(table.to_html(index=False, classes="verdicts", border=0))


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("analyses.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_TEMPLATES.filters |= {"figure": _figure_html, "table": _table_html}


def _summary_table(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Every question once, the models' answers side by side (None without verdicts)."""
    if verdicts.empty:
        return None
    table = verdicts.pivot_table(index="question", columns="model", values="answer", aggfunc="first", sort=False)
    table = table.reindex(index=verdicts["question"].unique(), columns=verdicts["model"].unique()).fillna("-")
    table.columns.name = None
    return table.reset_index()


def verdict_table(lang: str, per_model: dict[str, list[SectionResult]]) -> pd.DataFrame:
    """Every verdict of the page, one row each (:data:`VERDICT_COLUMNS`)."""
    rows = [
        {"lang": lang, "model": model, "section": result.title, **asdict(verdict)}
        for model, results in per_model.items()
        for result in results
        for verdict in result.verdicts
    ]
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def render_report(
    lang: str,
    per_model: dict[str, list[SectionResult]],
    out: Path,
    *,
    provenance: dict[str, object] | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> Path:
    """Write ``out/report_<lang>.html`` (with ``plotlyjs="directory"``, also ``out/plotly.min.js``
    unless there) and, under ``out/<lang>/``, one CSV per table (``<model>__<table>.csv``), the
    sections' linked pages, ``verdicts.csv`` and ``provenance.json``."""
    tables = out / lang
    tables.mkdir(parents=True, exist_ok=True)
    for model, results in per_model.items():
        for result in results:
            for name, table in result.tables.items():
                write_text_atomic(table.to_csv(index=False), tables / f"{model.replace('/', '_')}__{name}.csv")
            for page in result.pages:
                shared = f"../{PLOTLYJS_FILE}" if plotlyjs == "directory" else None
                write_text_atomic(explorer_page(page.figure, title=page.title, plotlyjs=shared), tables / page.name)
    verdicts = verdict_table(lang, per_model)
    write_text_atomic(verdicts.to_csv(index=False), tables / "verdicts.csv")
    provenance = provenance or {}
    write_text_atomic(json.dumps(provenance, indent=2, default=str), tables / "provenance.json")
    if plotlyjs == "directory":
        write_plotlyjs(out)
    page = _TEMPLATES.get_template("report.html.j2").render(
        lang=lang,
        per_model=per_model,
        models=provenance.get("models", {}),
        code=provenance.get("code", {}),
        summary=_summary_table(verdicts),
        style=_STYLE,
        plotlyjs=Markup(get_plotlyjs()) if plotlyjs == "inline" else None,
        plotlyjs_file=PLOTLYJS_FILE,
    )
    path = out / f"report_{lang}.html"
    write_text_atomic(page, path)
    return path


def write_index(out: Path) -> Path:
    """``out/index.html`` and ``out/verdicts.csv``: every report under ``out`` with its verdicts,
    read back from the reports' own ``verdicts.csv`` (so separate runs add up)."""
    found = sorted(path for path in out.glob("*/verdicts.csv") if (out / f"report_{path.parent.name}.html").is_file())
    verdicts = (
        pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in found], ignore_index=True)
        if found
        else pd.DataFrame(columns=list(VERDICT_COLUMNS))
    )
    write_text_atomic(verdicts.to_csv(index=False), out / "verdicts.csv")
    page = _TEMPLATES.get_template("index.html.j2").render(
        langs=[path.parent.name for path in found],
        verdicts=verdicts[["lang", "model", "question", "answer", "uncertainty"]],
        style=_STYLE,
    )
    path = out / "index.html"
    write_text_atomic(page, path)
    return path
