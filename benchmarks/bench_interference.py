"""Cost of one batch pair of the interference probe against two bare forward+backward passes.

bare      : ``model(**inputs, labels=labels).loss.backward()`` on the plain ``transformers``
            model, once per batch of the pair (gradients left in ``.grad``, nothing else)
probe     : ``run_interference`` on the same pair through the backend (two backward passes,
            per-tensor dot products and norms, every row of the tidy table)

Target: probe / bare <= 1.2. Usage: python benchmarks/bench_interference.py [--model M]
[--batch-size B] [--pairs K] [--params all|blocks|matrices]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from rich.console import Console
from rich.table import Table

from probes.backend import load
from probes.inputs.instruction_data import load_instructions
from probes.interference import instruction_pairs, run_interference


def bare(model, pairs) -> None:
    for pair in pairs:
        for side in (pair.a, pair.b):
            model.zero_grad(set_to_none=True)
            model(**side.enc.model_inputs(), labels=side.labels, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Mean (wall, process CPU) seconds per call; CPU time is the robust one on a shared machine."""
    fn()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--params", default="all")
    args = parser.parse_args()
    backend = load(args.model)
    model = load(args.model, backend="nnsight")._hf_model()  # a plain copy for the bare passes
    pairs = instruction_pairs(backend, load_instructions(), "en", "sw", k=args.pairs, batch_size=args.batch_size)
    tokens = sum(int(p.a.enc.attention_mask.sum() + p.b.enc.attention_mask.sum()) for p in pairs) / len(pairs)
    runs = {
        "bare (2 x forward+backward)": lambda: bare(model, pairs),
        f"probe (params={args.params})": lambda: run_interference(backend, pairs, params=args.params, progress=False),
    }
    per_pair = {name: [t / len(pairs) for t in timed(fn, args.repeats)] for name, fn in runs.items()}
    floor_wall, floor_cpu = per_pair["bare (2 x forward+backward)"]
    table = Table(
        title=f"interference cost per batch pair: {args.model}, batch {args.batch_size}, ~{tokens:.0f} tokens per pair, "
        f"{torch.get_num_threads()} threads"
    )
    for column in ("method", "wall s / pair", "CPU s / pair", "ratio to bare (wall)", "ratio to bare (CPU)"):
        table.add_column(column)
    for name, (wall, cpu) in per_pair.items():
        table.add_row(name, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / floor_wall:.2f}", f"{cpu / floor_cpu:.2f}")
    Console().print(table)
    print(
        f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB; target ratio <= 1.2"
    )


if __name__ == "__main__":
    main()
