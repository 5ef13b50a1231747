"""Render a diagnosis report as one self-contained HTML file (plotly.js inlined once, so it
works offline), models side by side, and write its tables, verdicts and provenance beside it."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from analyses.figures.io import figure_id
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

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.models { display: grid; grid-template-columns: repeat(var(--n), minmax(0, 1fr)); gap: 1.5em; }
table.verdicts { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
table.verdicts td, table.verdicts th { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; font-size: 0.9em;
  text-align: left; }
.answer { font-weight: 600; }
h2 { border-bottom: 2px solid #1f77b4; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.85em; }
.note { color: #8a5a00; font-size: 0.9em; }
"""


def _figure_html(fig: go.Figure, place: str) -> str:
    """The figure at its own height and the column's width (a fixed width would overflow the
    side-by-side columns), with a div id from its content and its ``place`` on the page."""
    fitted = go.Figure(fig).update_layout(width=None, autosize=True)
    return fitted.to_html(
        full_html=False,
        div_id=f"{figure_id(fitted)}-{place}",
        include_plotlyjs=False,
        default_width="100%",
        default_height=f"{fig.layout.height or 450}px",
        config={"responsive": True},
    )


def _summary_html(verdicts: pd.DataFrame) -> str:
    """Every question once, the models' answers side by side."""
    if verdicts.empty:
        return ""
    table = verdicts.pivot_table(index="question", columns="model", values="answer", aggfunc="first", sort=False)
    table = table.reindex(index=verdicts["question"].unique(), columns=verdicts["model"].unique()).fillna("-")
    table.columns.name = None
    return "<h2>Summary</h2>" + table.reset_index().to_html(index=False, classes="verdicts", border=0)


def _section_html(result: SectionResult, lang: str, place: str) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(v.question)}</td><td class='answer'>{html.escape(v.answer)}</td>"
        f"<td>{html.escape(v.evidence)}</td><td>{html.escape(v.uncertainty)}</td></tr>"
        for v in result.verdicts
    )
    table = (
        "<table class='verdicts'><tr><th>question</th><th>answer</th><th>evidence</th><th>uncertainty</th></tr>"
        f"{rows}</table>"
        if rows
        else ""
    )
    notes = "".join(f"<p class='note'>{html.escape(note)}</p>" for note in result.notes)
    shown = "".join(
        f"<p class='meta'>{html.escape(name)}</p>"
        + result.tables[name].to_html(index=False, classes="verdicts", border=0)
        for name in result.shown
        if len(result.tables[name])
    )
    figures = "".join(_figure_html(fig, f"{place}-{i}") for i, fig in enumerate(result.figures))
    links = " · ".join(
        f"<a href='{html.escape(lang)}/{html.escape(page.name)}'>{html.escape(page.label)}</a>" for page in result.pages
    )
    links = f"<p class='meta'>Open in the explorer: {links}</p>" if links else ""
    return f"<h3>{html.escape(result.title)}</h3>{table}{notes}{shown}{links}<div class='figures'>{figures}</div>"


def verdict_table(lang: str, per_model: dict[str, list[SectionResult]]) -> pd.DataFrame:
    """Every verdict of the page, one row each (:data:`VERDICT_COLUMNS`)."""
    rows = [
        {"lang": lang, "model": model, "section": result.title, **asdict(verdict)}
        for model, results in per_model.items()
        for result in results
        for verdict in result.verdicts
    ]
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def _provenance_html(provenance: dict[str, Any]) -> str:
    models = provenance.get("models", {})
    code = provenance.get("code", {})
    lines = [
        f"{html.escape(name)}: {html.escape(str(info.get('model_source', 'weights of unknown origin')))}; "
        f"weights sha256 {html.escape(str(info.get('weights_hash', '?'))[:16])}..., "
        f"{html.escape(str(info.get('backend')))} backend, {html.escape(str(info.get('dtype')))} on "
        f"{html.escape(str(info.get('device')))}"
        for name, info in models.items()
    ]
    lines.append("code: " + ", ".join(f"{k} {html.escape(str(v))}" for k, v in code.items()))
    return "".join(f"<p class='meta'>{line}</p>" for line in lines)


def render_report(
    lang: str, per_model: dict[str, list[SectionResult]], out: Path, *, provenance: dict[str, object] | None = None
) -> Path:
    """Write ``out/report_<lang>.html`` and, under ``out/<lang>/``, one CSV per table
    (``<model>__<table>.csv``), the sections' linked pages, ``verdicts.csv`` and ``provenance.json``."""
    tables = out / lang
    tables.mkdir(parents=True, exist_ok=True)
    columns = "".join(
        f"<div><h2>{html.escape(model)}</h2>"
        + "".join(_section_html(result, lang, f"{m}-{s}") for s, result in enumerate(results))
        + "</div>"
        for m, (model, results) in enumerate(per_model.items())
    )
    for model, results in per_model.items():
        for result in results:
            for name, table in result.tables.items():
                write_text_atomic(table.to_csv(index=False), tables / f"{model.replace('/', '_')}__{name}.csv")
            for page in result.pages:
                write_text_atomic(page.html, tables / page.name)
    verdicts = verdict_table(lang, per_model)
    write_text_atomic(verdicts.to_csv(index=False), tables / "verdicts.csv")
    provenance = provenance or {}
    write_text_atomic(json.dumps(provenance, indent=2, default=str), tables / "provenance.json")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>pivotlens diagnosis: {html.escape(lang)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>How do these models handle {html.escape(lang)}?</h1>"
        f"<p class='meta'>pivotlens diagnosis report, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Tables: <a "
        f"href='{html.escape(lang)}/'>{html.escape(lang)}/</a>.</p>"
        f"{_provenance_html(provenance)}{_summary_html(verdicts)}"
        f"<div class='models' style='--n: {len(per_model)}'>{columns}</div></body></html>"
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
    links = "".join(
        f"<li><a href='report_{html.escape(p.parent.name)}.html'>{html.escape(p.parent.name)}</a></li>" for p in found
    )
    body = verdicts[["lang", "model", "question", "answer", "uncertainty"]].to_html(
        index=False, classes="verdicts", border=0
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pivotlens diagnosis reports</title>"
        f"<style>{_STYLE}</style></head><body><h1>pivotlens diagnosis reports</h1><ul>{links}</ul>"
        f"<h2>Every verdict</h2>{body}</body></html>"
    )
    path = out / "index.html"
    write_text_atomic(page, path)
    return path
