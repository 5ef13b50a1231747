"""Check that re-rendering the committed results changes no file.

    python scripts/rerender_check.py [--models gemma-3-270m,smollm2-135m] [--results results] [--write]

1. Every catalogued figure is built twice from the committed tables and written twice: the two
   HTML files must be byte-identical (figure ids come from the figure's content, not a random
   uuid; the statistics are seeded).
2. Committed folders whose command can redraw its figures from the tables in the folder
   (:data:`REDRAWN`) are redrawn into a copy and compared with the committed HTML, byte for byte;
   ``--write`` rewrites the committed files that differ.
3. The committed HTML no command can redraw from its tables (their figures are drawn from results
   in memory, or, for the diagnosis reports, from the results store) is counted, and listed with
   ``--verbose``.

Exit code 0 when 1 and 2 hold (after ``--write``, 2 holds by construction), 1 otherwise. Static
images are not compared (kaleido's PNG output depends on the browser build); nothing is computed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from analyses.figures.catalog import regenerate
from analyses.pipelines.layer_swap import write_figures

# committed folder (relative to the results root) -> its command's redraw from the folder's tables
REDRAWN: dict[str, Callable[[Path], object]] = {"layer_swap": write_figures}


def render(results: Path, model: str, out: Path) -> dict[str, bytes]:
    regenerate(results, model, out, compute=False, formats=())
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.html"))}


def unstable_figures(results: Path, models: list[str]) -> list[str]:
    """Catalogued figures whose two renders differ."""
    differing = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            first = render(results, model, Path(tmp) / model / "first")
            second = render(results, model, Path(tmp) / model / "second")
            differing += [
                f"{model}/{name}" for name in sorted(set(first) | set(second)) if first.get(name) != second.get(name)
            ]
            print(f"{model}: {len(first)} catalogued figures rendered twice")
    return differing


def redraw(results: Path, write: bool) -> tuple[list[Path], set[Path]]:
    """The committed HTML of :data:`REDRAWN` that differs from its redraw (rewritten with
    ``write``), and every committed HTML file redrawn."""
    differing, covered = [], set()
    for folder, draw in REDRAWN.items():
        committed = results / folder
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / folder
            shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("*.html", "*.png", "*.svg", "*.js"))
            draw(copy)
            for page in sorted(copy.rglob("*.html")):
                target = committed / page.relative_to(copy)
                covered.add(target)
                if not target.is_file() or target.read_bytes() != page.read_bytes():
                    differing.append(target)
                    if write:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(page.read_bytes())
    return differing, covered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gemma-3-270m,smollm2-135m")
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--write", action="store_true", help="rewrite the committed files that differ from a redraw")
    parser.add_argument("--verbose", action="store_true", help="list the committed HTML no command redraws")
    args = parser.parse_args()
    unstable = unstable_figures(args.results, args.models.split(","))
    differing, covered = redraw(args.results, args.write)
    others = sorted(set(args.results.rglob("*.html")) - covered)
    print(f"{len(covered)} committed HTML files redrawn from their tables; {len(others)} not redrawable from tables")
    if args.verbose:
        print("\n".join(f"not redrawable: {p}" for p in others))
    for name in unstable:
        print(f"renders differ: {name}", file=sys.stderr)
    for path in differing:
        print(f"{'rewritten' if args.write else 'differs from its redraw'}: {path}", file=sys.stderr)
    return 1 if unstable or (differing and not args.write) else 0


if __name__ == "__main__":
    sys.exit(main())
