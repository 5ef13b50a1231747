"""Render a diagnosis report as one self-contained HTML file (plotly.js inlined once, so it
works offline), models side by side, and write its tables as CSV."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from plotly.offline import get_plotlyjs

from analyses.report.sections import SectionResult
from probes.backend.store import write_text_atomic

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.models { display: grid; grid-template-columns: repeat(var(--n), minmax(0, 1fr)); gap: 1.5em; }
table.verdicts { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
table.verdicts td, table.verdicts th { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; font-size: 0.9em; }
.answer { font-weight: 600; }
h2 { border-bottom: 2px solid #1f77b4; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.85em; }
.note { color: #8a5a00; font-size: 0.9em; }
"""


def _section_html(result: SectionResult) -> str:
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
        f"<p class='meta'>{html.escape(name)}</p>" + result.tables[name].to_html(index=False, classes="verdicts", border=0)
        for name in result.shown
        if len(result.tables[name])
    )
    figures = "".join(fig.to_html(full_html=False, include_plotlyjs=False) for fig in result.figures)
    return f"<h3>{html.escape(result.title)}</h3>{table}{notes}{shown}<div class='figures'>{figures}</div>"


def render_report(lang: str, per_model: dict[str, list[SectionResult]], out: Path) -> Path:
    """Write ``report_<lang>.html`` and one CSV per table (``<model>__<table>.csv``) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    columns = "".join(
        f"<div><h2>{html.escape(model)}</h2>{''.join(_section_html(r) for r in results)}</div>"
        for model, results in per_model.items()
    )
    for model, results in per_model.items():
        for result in results:
            for name, table in result.tables.items():
                write_text_atomic(table.to_csv(index=False), out / f"{model.replace('/', '_')}__{name}.csv")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>pivotlens diagnosis: {html.escape(lang)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>How do these models handle {html.escape(lang)}?</h1>"
        f"<p class='meta'>pivotlens diagnosis report, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Embedded models hold "
        "dequantized 4-bit weights.</p>"
        f"<div class='models' style='--n: {len(per_model)}'>{columns}</div></body></html>"
    )
    path = out / f"report_{lang}.html"
    write_text_atomic(page, path)
    return path
