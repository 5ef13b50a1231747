"""The check every pipeline test with figures makes: the folder's figures, redrawn from its tables
alone by the pipeline's ``write_figures``, are the pages the pipeline wrote, byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analyses.figures.io import redraw_copy


def assert_redraws_identically(folder: Path, draw: Callable[[Path], object], scratch: Path) -> None:
    pages = redraw_copy(folder, draw, scratch / "redrawn")
    assert pages, f"no figure redrawn from {folder}"
    assert pages == sorted(page.relative_to(folder) for page in folder.rglob("*.html"))
    for page in pages:
        assert (scratch / "redrawn" / page).read_bytes() == (folder / page).read_bytes(), page
