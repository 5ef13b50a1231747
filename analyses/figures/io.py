"""Writing figures: interactive HTML that works offline, plus a static image where possible."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from probes.backend.store import write_text_atomic

#: the plotly.js bundle that pages written with ``include_plotlyjs="directory"`` load from beside them
PLOTLYJS_FILE = "plotly.min.js"


def figure_id(fig: go.Figure) -> str:
    """A div id that depends on the figure only (plotly's default is a random uuid), so the same
    tables give byte-identical HTML and a re-render of committed results changes no file."""
    text = cast(str, fig.to_json())  # plotly's to_json is unannotated; it returns the JSON text
    return "fig-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def write_plotlyjs(folder: Path) -> Path:
    """``folder/plotly.min.js`` for the folder's pages that load plotly.js from beside them, written
    once as plotly's ``write_html(include_plotlyjs="directory")`` does (an existing file is kept),
    so :func:`save_figure`'s figures and the diagnosis pages of one folder share it."""
    path = folder / PLOTLYJS_FILE
    if not path.exists():
        write_text_atomic(get_plotlyjs(), path)
    return path


def save_figure(
    fig: go.Figure,
    path: str | Path,
    *,
    static: bool = True,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Write ``path.html`` (plotly.js written once beside it, ``plotly.min.js``, shared by the
    folder's pages, so they work offline) and, with ``static`` and a browser for kaleido,
    one static image per format (``png``, ``svg``, ``pdf``). Returns the files written."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    html = path.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory", full_html=True, div_id=figure_id(fig))
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


def redraw_copy(folder: Path, draw: Callable[[Path], object], copy: Path) -> list[Path]:
    """Redraw the figures of a results ``folder`` from its tables alone: copy it to ``copy``
    without its figures (HTML, images, plotly.js), call ``draw(copy)`` (a pipeline's
    ``write_figures``) and return the pages drawn, relative to ``copy``; each should equal the
    folder's page byte for byte."""
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.html", "*.png", "*.svg", "*.pdf", "*.js"))
    draw(copy)
    return sorted(page.relative_to(copy) for page in copy.rglob("*.html"))
