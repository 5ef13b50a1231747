"""Writing figures: interactive HTML that works offline, plus a static image where possible."""

from __future__ import annotations

import warnings
from pathlib import Path

import plotly.graph_objects as go


def save_figure(fig: go.Figure, path: str | Path, *, static: bool = True) -> list[Path]:
    """Write ``path.html`` (plotly.js written once beside it, so it works offline) and, when a
    browser for kaleido is available, ``path.png``. Returns the files written."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    html = path.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory", full_html=True)
    written = [html]
    if static:
        try:
            fig.write_image(path.with_suffix(".png"), width=900, height=600, scale=2)
            written.append(path.with_suffix(".png"))
        except Exception as exc:  # kaleido needs a Chrome/Chromium; HTML is the primary output
            warnings.warn(f"static export skipped for {path.name} ({exc.__class__.__name__}); HTML written", stacklevel=2)
    return written
