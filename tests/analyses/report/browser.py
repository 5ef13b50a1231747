"""Open a report in headless Chromium and read back what it drew."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="no Chromium on this machine (make setup installs it)"
)


@dataclass(frozen=True)
class Drawn:
    figures: int  # figures plotly drew
    empty: int  # drawn figures without a data trace (scatter, bar, box or heatmap)
    errors: list[str]  # console errors and warnings


def draw(page: Path, profile: Path) -> Drawn:
    """Load ``page`` with its scripts run (10 s of virtual time) and count the drawn figures."""
    assert CHROMIUM, "Chromium is missing: `make setup` installs Debian's chromium package"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
    ]
    done = subprocess.run([CHROMIUM, *flags, page.as_uri()], capture_output=True, text=True, timeout=180, check=False)
    dom = done.stdout
    errors = [
        line
        for line in done.stderr.splitlines()
        if "CONSOLE" in line and any(w in line for w in ("Error", "Uncaught", "WARN"))
    ]
    drawn = dom.split('class="plot-container plotly"')[1:]
    empty = sum(1 for figure in drawn if not re.search(r'class="(trace |hm")', figure))
    return Drawn(len(drawn), empty, errors)


def figures_in(page: Path) -> int:
    """Figures the page holds (one plotly div each), drawn or not."""
    return page.read_text().count('class="plotly-graph-div"')
