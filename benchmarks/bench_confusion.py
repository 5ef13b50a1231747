"""Cost of generation with per-step statistics, side by side in one process, same prompts, same seed.

plain      : the backend's own model, ``model.generate`` with the benchmark's sampling (T = 0.3,
             p = 0.75; ``--greedy``: greedy decoding), no statistics
plain mode : ``Backend.generate(statistics=False)``, what callers that read no statistics use
             (``recipe-eval``'s and the arithmetic probe's answers)
statistics : ``Backend.generate``: the same generation plus, per step, entropy (bits), nucleus
             size at p = 0.75 and the top-k of the raw next-token distribution
probe      : the confusion probe (statistics + decoding each token + benchmark LID judgement +
             confusion points + the tidy table)

Variants run interleaved (after a warm-up) and the median time is kept, so a busy machine hurts
them alike. Ratios are relative to ``plain``; the target for ``statistics`` is at most 1.2. The
generated ids of ``plain``, ``plain mode`` and ``statistics`` must be identical (the recorder
leaves the scores unchanged).
Usage: python benchmarks/bench_confusion.py [--model M] [--backend B] [--n N] [--tokens T] [--greedy]
"""

from __future__ import annotations

import argparse
import statistics as stats
import time

import torch
from rich.console import Console
from rich.table import Table

from probes.backend import load
from probes.confusion import render, run_confusion
from probes.inputs.confusion_data import load_authored, select

LANGS = ["fr", "zh", "ja", "ru", "ar", "hi", "de", "ko"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--backend", default="transformer-lens")
    parser.add_argument("--n", type=int, default=16, help="prompts (one batch)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per prompt")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--greedy", action="store_true", help="greedy decoding (as recipe-eval's answers)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    backend = load(args.model, backend=args.backend)
    per_lang = max(1, args.n // (2 * len(LANGS)) + 1)
    pool = select(load_authored("monolingual"), LANGS, per_lang) + select(
        load_authored("crosslingual"), LANGS, per_lang
    )
    prompts = pool[: args.n]
    enc = backend.encode([render(backend, p).ids for p in prompts])
    model = backend._hf_model()
    sampling = {"max_new_tokens": args.tokens, "do_sample": not args.greedy}
    if not args.greedy:
        sampling.update(temperature=0.3, top_p=0.75)
    outputs: dict[str, torch.Tensor] = {}

    def plain() -> None:
        torch.manual_seed(0)
        # the same inputs Backend.generate passes (explicit position_ids would change generate's path)
        out = model.generate(
            input_ids=enc.input_ids, attention_mask=enc.attention_mask, pad_token_id=backend.pad_id, **sampling
        )
        outputs["plain"] = out[:, enc.input_ids.shape[1] :].cpu()

    def plain_mode() -> None:
        outputs["plain mode"] = backend.generate(enc, seed=0, statistics=False, **sampling).new_ids

    def with_statistics() -> None:
        outputs["statistics"] = backend.generate(enc, seed=0, **sampling).new_ids

    def probe() -> None:
        run_confusion(backend, prompts, max_new_tokens=args.tokens, batch_size=len(prompts), progress=False)

    variants = {"plain": plain, "plain mode": plain_mode, "statistics": with_statistics, "probe": probe}
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    same = torch.equal(outputs["plain"], outputs["statistics"]) and torch.equal(
        outputs["plain mode"], outputs["statistics"]
    )
    base = stats.median(times["plain"])
    table = Table(
        title=f"generation cost: {backend.model_name} ({backend.name}), {len(prompts)} prompts x "
        f"{args.tokens} new tokens, {'greedy' if args.greedy else 'sampled'}, median of {args.repeats}"
    )
    for column in ("variant", "seconds", "ratio vs plain", "target"):
        table.add_column(column)
    for name in variants:
        median = stats.median(times[name])
        target = "<= 1.2" if name == "statistics" else ""
        table.add_row(name, f"{median:.2f}", f"{median / base:.2f}", target)
    console = Console()
    console.print(table)
    statistics_cost = stats.median(times["statistics"]) / stats.median(times["plain mode"])
    console.print(f"identical generated ids (plain, plain mode, statistics): {same}")
    console.print(f"statistics / plain mode: {statistics_cost:.2f}")


if __name__ == "__main__":
    main()
