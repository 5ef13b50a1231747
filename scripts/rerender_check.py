"""Re-render the catalogued figures of the committed results twice and check that the two
renders are byte-identical (figure ids come from the figure's content, not a random uuid).

    python scripts/rerender_check.py [--models gemma-3-270m,smollm2-135m] [--results results]

Exit code 0 when every HTML file is identical, 1 otherwise (the differing files are listed).
Static images are not compared (kaleido's PNG output depends on the browser build); nothing
is computed: missing data is reported by the catalog's manifest and skipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from analyses.figures.catalog import regenerate


def render(results: Path, model: str, out: Path) -> dict[str, bytes]:
    regenerate(results, model, out, compute=False, formats=())
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.html"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gemma-3-270m,smollm2-135m")
    parser.add_argument("--results", default="results", type=Path)
    args = parser.parse_args()
    differing = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            first = render(args.results, model, Path(tmp) / model / "first")
            second = render(args.results, model, Path(tmp) / model / "second")
            differing += [
                f"{model}/{name}" for name in sorted(set(first) | set(second)) if first.get(name) != second.get(name)
            ]
            print(f"{model}: {len(first)} figures rendered twice")
    for name in differing:
        print(f"differs: {name}", file=sys.stderr)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
