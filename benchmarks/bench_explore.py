"""The lens explorer on a 100-token prompt, after the model is loaded: the Backend's lens at every
layer and position, the tidy table, the figure and the standalone page of that figure (what
``pivotlens explore`` does). Budget: under 3 s on SmolLM2.

Usage: python benchmarks/bench_explore.py [--model M] [--tokens N] [--repeats R] [--budget S] [--target WORD]

The default target 云 is scored as the lens probe scores it: on SmolLM2, whose byte-level
vocabulary has no token that spells it whole, by its chain and that of "cloud" (teacher-forced
after the prompt, in the grid's own forward pass); ``--target ''`` leaves it out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from rich.console import Console
from rich.table import Table

from analyses.figures.explore import explorer_page
from analyses.pipelines.explore import explore
from probes.backend import load
from probes.inputs.prompts import lens_prompts
from probes.inputs.words import load_concepts


def prompt_of(backend, n_tokens: int) -> str:
    """French -> Chinese translation prompts, one after the other, cut to ``n_tokens`` tokens."""
    text = "\n".join(p.text for p in lens_prompts("translation", load_concepts(), "zh")[:10])
    special = len(backend.tokenize(""))  # <bos> on Gemma, nothing on SmolLM2
    return backend.tokenizer.decode(backend.tokenize(text, add_special_tokens=False)[: n_tokens - special])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds allowed for one render")
    parser.add_argument("--target", default="云", help="the word whose probability is tracked ('' for none)")
    args = parser.parse_args()
    backend = load(args.model)
    prompt = prompt_of(backend, args.tokens)
    n_tokens = len(backend.tokenize(prompt))
    stages = {"explore (lens + table)": [], "figure": [], "page (HTML)": [], "total": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = explore(backend, prompt, color="lang", target=args.target or None)
        mid = time.perf_counter()
        fig = found.figure()
        drawn = time.perf_counter()
        explorer_page(fig, title=found.title)
        end = time.perf_counter()
        for name, seconds in zip(stages, (mid - start, drawn - mid, end - drawn, end - start)):
            stages[name].append(seconds)
    table = Table(
        title=f"explorer on {n_tokens} tokens x {backend.n_layers} layers of {args.model}, target {args.target!r} "
        f"(median of {args.repeats}; {len(fig.data[0].z.ravel())} cells)"
    )
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in stages.items():
        table.add_row(name, f"{statistics.median(seconds):.2f}")
    Console().print(table)
    total = statistics.median(stages["total"])
    within = total < args.budget
    print(f"{'within' if within else 'OVER'} the budget: {total:.2f} s {'<' if within else '>='} {args.budget:g} s")
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
