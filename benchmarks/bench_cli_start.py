"""Start-up time of the command line: ``pivotlens --help`` and ``pivotlens --version`` (target
under 1 s), each the median of N fresh processes run from this checkout. The CPU time (user +
system) of each process is printed too: on a busy machine the wall time waits for a core, the
CPU time does not.

Usage: python benchmarks/bench_cli_start.py [--n 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``pivotlens`` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "analyses.cli", *args], cwd=ROOT, env=env, capture_output=True, check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="processes per command")
    n = parser.parse_args().n
    for args in (["--help"], ["--version"]):
        walls, cpus = zip(*(seconds(args) for _ in range(n)))
        median = statistics.median(walls)
        verdict = "within" if median < TARGET_S else "ABOVE"
        print(
            f"pivotlens {' '.join(args):10s} median {median:.2f} s over {n} runs (min {min(walls):.2f} s; "
            f"CPU {statistics.median(cpus):.2f} s), {verdict} the {TARGET_S:.0f} s target"
        )


if __name__ == "__main__":
    main()
