"""Cost of the linear-shortcut and tuned lenses, side by side in one run.

fit rows   : tokens per second over the same token rows (balanced multilingual fitting text)
  bare forward       : the transformers model's forward over the rows (no hooks, no lens)
  linear fit         : pivotlens' closed-form fit (residuals of every block + streamed second moments + solve)
  tuned training     : Adam steps of the tuned lens (exact KL over the full vocabulary), per trained token;
                       the activation pass it starts with is timed apart
probe rows : the lens probe (run_lens) on N translation prompts with --lens linear / tuned against
             --lens logit (target: at most 1.15x)

Usage: python benchmarks/bench_lens_family.py [--model M] [--tokens T] [--steps S] [--n N]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from probes.backend import load
from probes.backend.lens_fit import activations, fit_linear, fit_tuned, fitting_tokens, tokens_needed
from probes.backend.lenses import LOGIT
from probes.inputs.lens_corpus import balanced_rows, fitting_texts
from probes.inputs.prompts import lens_prompts
from probes.inputs.words import load_concepts
from probes.lens import run_lens


def seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bare_forward(model, backend, rows, batch_size: int) -> None:
    ordered = sorted(rows, key=len)
    with torch.no_grad():
        for start in range(0, len(ordered), batch_size):
            model(**backend.encode(ordered[start : start + batch_size]).model_inputs())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--tokens", type=int, default=None, help="fitting tokens (default: 10 x d, the least the fit accepts)"
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tokens-per-step", type=int, default=32)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    backend = load(args.model)
    model = load(args.model, backend="nnsight")._hf_model()  # a plain copy for the bare forward
    budget = args.tokens or tokens_needed(backend.d_model) + 500
    rows = [r for lang_rows in balanced_rows(backend.tokenize, fitting_texts(), budget).values() for r in lang_rows]
    n_tokens = fitting_tokens(rows)
    bare, _ = seconds(lambda: bare_forward(model, backend, rows, args.batch_size))
    linear_s, linear = seconds(lambda: fit_linear(backend, rows, batch_size=args.batch_size, progress=False))
    pass_s, _ = seconds(lambda: [None for _ in activations(backend, rows, batch_size=args.batch_size, progress=False)])
    tuned_s, tuned = seconds(
        lambda: fit_tuned(
            backend,
            rows,
            init=linear,
            steps=args.steps,
            tokens_per_step=args.tokens_per_step,
            batch_size=args.batch_size,
            progress=False,
        )
    )
    trained = args.steps * args.tokens_per_step
    # fit_tuned also evaluates the KL on every training token before and after (two lens passes)
    fit = Table(
        title=f"lens fitting on {args.model}: {n_tokens} tokens (d = {backend.d_model}, {backend.n_layers} layers)"
    )
    for column in ("method", "seconds", "tokens/s", "ratio vs bare forward (s per token)"):
        fit.add_column(column)
    fit.add_row("bare forward", f"{bare:.1f}", f"{n_tokens / bare:.0f}", "1.00")
    fit.add_row("linear fit (closed form)", f"{linear_s:.1f}", f"{n_tokens / linear_s:.0f}", f"{linear_s / bare:.2f}")
    fit.add_row(
        "residual pass alone (backend.residuals, every block)",
        f"{pass_s:.1f}",
        f"{n_tokens / pass_s:.0f}",
        f"{pass_s / bare:.2f}",
    )
    fit.add_row(
        f"tuned lens: {args.steps} steps x {args.tokens_per_step} tokens, incl. pass + 2 KL evaluations",
        f"{tuned_s:.1f}",
        f"{trained / tuned_s:.1f} trained",
        f"{(tuned_s / trained) / (bare / n_tokens):.0f}",
    )
    Console().print(fit)

    prompts = lens_prompts("translation", load_concepts(), "zh")[: args.n]
    probe = {
        name: seconds(lambda lens=lens: run_lens(backend, prompts, batch_size=16, progress=False, lens=lens))[0]
        for name, lens in (("logit", LOGIT), ("logit (again)", LOGIT), ("linear", linear), ("tuned", tuned))
    }
    base = min(probe["logit"], probe["logit (again)"])
    table = Table(title=f"lens probe (run_lens) on {len(prompts)} prompts, {args.model}")
    for column in ("--lens", "seconds", "ratio vs logit (target <= 1.15)"):
        table.add_column(column)
    for name, s in probe.items():
        table.add_row(name, f"{s:.2f}", f"{s / base:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
