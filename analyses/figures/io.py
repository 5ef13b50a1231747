"""Writing figures: interactive HTML that works offline, plus a static image where possible."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go


def save_figure(
    fig: go.Figure,
    path: str | Path,
    *,
    static: bool = True,
    plotlyjs: str = "directory",
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Write ``path.html`` (plotly.js written once beside it, so it works offline; ``plotlyjs="cdn"``
    links it instead, for committed results) and, with ``static`` and a browser for kaleido,
    one static image per format (``png``, ``svg``, ``pdf``). Returns the files written."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    html = path.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=plotlyjs, full_html=True)
    written = [html]
    for fmt in formats if static else ():
        image = path.with_suffix(f".{fmt}")
        try:
            fig.write_image(
                image, width=fig.layout.width or 900, height=fig.layout.height or 600, scale=2 if fmt == "png" else 1
            )
        except Exception as exc:  # noqa: BLE001 -- kaleido needs a Chrome/Chromium; HTML is the primary output
            warnings.warn(
                f"static export skipped for {image.name} ({exc.__class__.__name__}); HTML written", stacklevel=2
            )
            break
        written.append(image)
    return written
