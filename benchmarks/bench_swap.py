"""Cost of a layer-swap merge (mergekit, tensor by tensor) against the floor of handling one
checkpoint: ``from_pretrained`` + ``save_pretrained`` of the task expert.

Each operation runs in a fresh subprocess so that its memory is its own. Memory is the peak
*above the process baseline* (after imports, before any weight is read): resident anonymous
memory (``RssAnon``, the process's own allocations, sampled every 2 ms) and, for reference, the
peak resident set (``ru_maxrss``, which also counts file pages mapped from the safetensors
files). Both are compared with the largest single tensor of the checkpoint (the target: at most
3x). Time: wall clock and CPU time (process time), median of ``--repeats``.

Without experts the benchmark merges the model with a hard-linked copy of itself (same bytes,
another folder: the merge does the same work).
Usage: python benchmarks/bench_swap.py [--task-expert M] [--lang-expert M] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHILD = r"""
import json, os, resource, sys, threading, time
import torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
import transformers, mergekit.merge  # imports belong to the baseline
from analyses.interventions.layer_swap import SwapConfig, swap

def rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0

peak = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.002)

op, task, lang, out = sys.argv[1:5]
baseline_anon, baseline_max = rss_anon(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
thread = threading.Thread(target=sample, daemon=True)
thread.start()
wall, cpu = time.perf_counter(), time.process_time()
if op == "merge":
    swap(task, lang, out, SwapConfig(2, 1, 1, 1), progress=False)
else:
    model = transformers.AutoModelForCausalLM.from_pretrained(task)
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(task).save_pretrained(out)
    del model
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
stop.set(); thread.join()
print(json.dumps({"wall": wall, "cpu": cpu, "anon": peak[0] - baseline_anon,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline_max}))
"""


def _measure(op: str, task: str, lang: str, threads: int) -> dict:
    out = tempfile.mkdtemp(prefix=f"bench-swap-{op}-")
    shutil.rmtree(out)
    try:
        env = os.environ | {"BENCH_THREADS": str(threads)}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, op, task, lang, out], capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{op} failed: {done.stderr.strip().splitlines()[-1]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _linked_copy(folder: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for file in folder.iterdir():
        if file.is_file():
            os.link(file, target / file.name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task-expert", default="gemma-3-270m")
    parser.add_argument("--lang-expert", default=None, help="default: a hard-linked copy of --task-expert")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from probes.backend.checkpoint import open_checkpoint

    task = open_checkpoint(args.task_expert)
    scratch = Path(tempfile.mkdtemp(prefix="bench-swap-"))
    try:
        lang = (
            open_checkpoint(args.lang_expert).folder
            if args.lang_expert
            else _linked_copy(task.folder, scratch / "copy")
        )
        largest = task.largest_tensor_bytes()
        total = sum(math.prod(shape) for shape in task.shapes.values())
        runs: dict[str, list[dict]] = {"load + save (floor)": [], "swap merge (mergekit)": []}
        for _ in range(args.repeats):  # alternate, so that the machine's load hits both alike
            runs["load + save (floor)"].append(_measure("floor", str(task.folder), str(lang), args.threads))
            runs["swap merge (mergekit)"].append(_measure("merge", str(task.folder), str(lang), args.threads))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(
        title=f"layer swap on {task.name} ({task.n_layers} layers, {total / 1e6:.0f}M parameters; "
        f"largest tensor {largest / 2**20:.0f} MiB; median of {args.repeats})"
    )
    for column in (
        "operation",
        "wall s",
        "CPU s",
        "peak anon above baseline",
        "x largest tensor",
        "peak RSS above baseline",
        "x largest tensor (RSS)",
    ):
        table.add_column(column, justify="right")
    medians = {}
    for name, measures in runs.items():
        med = {k: statistics.median(m[k] for m in measures) for k in ("wall", "cpu", "anon", "maxrss")}
        medians[name] = med
        table.add_row(
            name,
            f"{med['wall']:.1f}",
            f"{med['cpu']:.1f}",
            f"{med['anon'] / 2**20:.0f} MiB",
            f"{med['anon'] / largest:.2f}",
            f"{med['maxrss'] / 2**20:.0f} MiB",
            f"{med['maxrss'] / largest:.2f}",
        )
    console = Console(width=150)
    console.print(table)
    merge, floor = medians["swap merge (mergekit)"], medians["load + save (floor)"]
    console.print(
        f"merge / floor: wall {merge['wall'] / floor['wall']:.2f}x, CPU {merge['cpu'] / floor['cpu']:.2f}x; "
        f"merge peak anon = {merge['anon'] / largest:.2f}x the largest tensor (target <= 3x: "
        f"{'met' if merge['anon'] <= 3 * largest else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
