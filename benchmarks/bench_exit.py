"""Cost of the exit probe against the floor, and with against without the shared-prefix cache,
side by side in one run.

floor  : bare transformers forward of the decoder (no LM head over the sequence), every prompt in
         full; forward hooks keep each block's output at the answer position only; then final
         norm + head + softmax + top-2 + the answer tokens' probabilities on [layers, N, d]
         (exactly what the probe asks)
probe  : probes.exit_accuracy.exit_accuracy (prompts, token checks, Backend.lens, tidy table),
         on the transformer-lens and nnsight backends, each twice: with the prompts' shared prefix
         encoded once and its KV cache reused (Backend.shared_prefix / encode_after, the default),
         and with every prompt encoded in full (Backend.reuses_prefix_cache = False)

Same prompts, same batches, timed in alternation (median of --repeats) so that the machine's
load hits every row alike. Both wall-clock and CPU time (process time, all threads) are shown;
the ratio uses CPU time, which other processes on a shared machine disturb far less. The largest
difference of any table value between the cached and the uncached run is printed too.
Usage: python benchmarks/bench_exit.py [--model M] [--task T] [--lang L] [--n N] [--shots K] [--demos fixed|per-item]
       [--batch-size B]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from probes.backend import load
from probes.backend.architecture import ModelParts
from probes.backend.base import common_prefix, encode_ids
from probes.backend.models import load_hf
from probes.exit_accuracy import exit_accuracy
from probes.inputs.tasks import DEMO_MODES, answer_token_ids, load_task, task_prompts


def floor(model, parts: ModelParts, rows: list[list[int]], pad_id: int, answer_ids: torch.Tensor, batch_size: int):
    """Per layer and prompt: top-2 ids and probabilities and the answer tokens' probabilities."""
    blocks, base = parts.block_list(model), model.get_decoder()
    out = []
    for start in range(0, len(rows), batch_size):
        enc = encode_ids(rows[start : start + batch_size], pad_id)
        kept: list[torch.Tensor] = []

        def keep(module, args, output, kept=kept):
            kept.append((output[0] if isinstance(output, tuple) else output)[:, -1])

        handles = [block.register_forward_hook(keep) for block in blocks]
        try:
            base(**enc.model_inputs())
        finally:
            for handle in handles:
                handle.remove()
        probs = torch.softmax(parts.logits(model, torch.stack(kept)).float(), -1)
        top = probs.topk(2, -1)
        out.append((top.indices, top.values, probs[..., answer_ids]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--lang", default="en")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--demos", default="fixed", choices=DEMO_MODES)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    tl, nn = load(args.model), load(args.model, backend="nnsight")
    model, _, _, _ = load_hf(args.model)
    parts = ModelParts.locate(model)
    data = load_task(args.task)
    prompts = task_prompts(data, args.lang, shots=args.shots, n=args.n, demos=args.demos)
    answer_ids = torch.tensor(list(answer_token_ids(data.spec, tl.tokenizer, args.lang).values()))
    # the probe batches prompts by length; the floor gets the same batches
    rows = sorted((tl.tokenize(p.text) for p in prompts), key=len, reverse=True)
    n_tokens = sum(len(r) for r in rows) / len(rows)

    tables = {}

    def probe(name, backend, reuse_prefix: bool):
        def run():
            backend.reuses_prefix_cache = reuse_prefix
            tables[name] = exit_accuracy(
                backend,
                args.task,
                args.lang,
                shots=args.shots,
                demos=args.demos,
                n=args.n,
                data=data,
                batch_size=args.batch_size,
                progress=False,
            )

        return name, run

    methods = dict(
        [
            (
                "floor (bare forward, answer position only)",
                lambda: floor(model, parts, rows, tl.pad_id, answer_ids, args.batch_size),
            ),
            probe("probe: exit (transformer-lens), prefix cache", tl, True),
            probe("probe: exit (transformer-lens), uncached", tl, False),
            probe("probe: exit (nnsight), prefix cache", nn, True),
            probe("probe: exit (nnsight), uncached", nn, False),
        ]
    )
    for fn in methods.values():  # warm-up
        fn()
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    base = statistics.median(cpu["floor (bare forward, answer position only)"])
    shared = len(common_prefix(rows))
    title = (
        f"exit probe vs floor: {args.model}, {args.task}/{args.lang}, N = {len(prompts)}, {args.shots}-shot "
        f"({args.demos} demonstrations) "
        f"(mean {n_tokens:.0f} tokens, {shared} shared by all), batch {args.batch_size}, {tl.n_layers} layers, "
        f"median of {args.repeats}"
    )
    table = Table(title=title)
    for column in ("method", "wall s", "CPU s", "items per CPU s", "ratio vs floor (CPU)"):
        table.add_column(column)
    for name in methods:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        table.add_row(name, f"{w:.2f}", f"{c:.2f}", f"{len(prompts) / c:.2f}", f"{c / base:.2f}")
    console = Console(width=140)
    console.print(table)
    numeric = ["gap", "top_prob", "gap_options", "top_prob_options", "p_gold", "p_options"]
    for backend in ("transformer-lens", "nnsight"):
        cached, uncached = (f"probe: exit ({backend}), {variant}" for variant in ("prefix cache", "uncached"))
        speedup = statistics.median(cpu[uncached]) / statistics.median(cpu[cached])
        difference = (tables[cached][numeric] - tables[uncached][numeric]).abs().to_numpy().max()
        same_ids = tables[cached]["pred_id"].equals(tables[uncached]["pred_id"])
        console.print(
            f"{backend}: uncached / prefix cache (CPU) = {speedup:.2f}; max |difference| of table values "
            f"{difference:.1e}; same top-1 ids: {same_ids}"
        )


if __name__ == "__main__":
    main()
