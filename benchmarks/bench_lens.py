"""Cost of logit-lens distributions at the last position of N prompts, side by side in one run.

floor      : bare transformers forward, hooks keep only the last position of each block, the
             forward stops after the last block, then final norm + head + softmax + entropy +
             gather on [layers, N, d] only (computes exactly what is asked)
interface  : pivotlens Backend.lens (transformer-lens and nnsight)
probe      : the lens probe (run_lens: token sets, both word probabilities, ranks, tidy table)
naive      : output_hidden_states=True, then full logits at every position of every layer

Ratios are relative to the float32 floor. ``--dtype float32,bfloat16`` adds the floor and the probe
in bfloat16 (weights and activations; the lens softmax accumulates in float32), side by side.
Usage: python benchmarks/bench_lens.py [--model M] [--n N] [--dtype float32,bfloat16]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from rich.console import Console
from rich.table import Table

from probes.backend import LensRequest, load
from probes.inputs.prompts import lens_prompts
from probes.inputs.words import load_concepts
from probes.lens import run_lens


class _Stop(Exception):
    pass


def floor(model, parts, enc, ids: torch.Tensor) -> None:
    blocks, kept = parts.block_list(model), []

    def keep(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        kept.append(hidden[:, -1])
        if len(kept) == len(blocks):
            raise _Stop

    handles = [b.register_forward_hook(keep) for b in blocks]
    try:
        model(**enc.model_inputs())
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    logits = parts.logits(model, torch.stack(kept))
    logp = torch.log_softmax(logits.float(), -1)
    probs = logp.exp()
    (-(probs * logp).sum(-1), probs.gather(-1, ids.unsqueeze(0).expand(len(kept), -1, -1)), probs.topk(5, -1))


def naive(model, enc) -> None:
    hidden = model(**enc.model_inputs(), output_hidden_states=True).hidden_states[1:]
    for h in hidden:
        torch.softmax(model.lm_head(model.model.norm(h)).float(), -1)


def timed(fn, repeats: int = 2) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float32", help="comma-separated: float32 first, then others")
    args = parser.parse_args()
    dtypes = args.dtype.split(",")
    torch.set_grad_enabled(False)
    tl = load(args.model)
    nn = load(args.model, backend="nnsight")
    model = load(args.model, backend="nnsight")._hf_model()  # a plain copy for the floor
    prompts = lens_prompts("translation", load_concepts(), "zh")[: args.n]
    batches = [prompts[i : i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
    encs = [tl.encode([p.text for p in b]) for b in batches]
    ids = [torch.randint(0, tl.vocab_size, (e.batch_size, 8)) for e in encs]
    request = [LensRequest(token_ids=i, top_k=5) for i in ids]
    # memory first (before the naive row sets a high peak): peak RSS while the probe streams
    # N, 2N, 4N prompts through fixed-size batches, above the RSS with the models loaded
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mem = Table(title="peak RSS of run_lens as N grows (flat = no per-prompt accumulation beyond the table)")
    mem.add_column("N")
    mem.add_column("peak RSS above the loaded models (MB)")
    concepts = load_concepts()
    for n in (args.n, 2 * args.n, 4 * args.n):
        more = [p for lang in ("zh", "ja", "ru", "de") for p in lens_prompts("translation", concepts, lang)][:n]
        run_lens(tl, more, batch_size=args.batch_size, progress=False)
        mem.add_row(str(len(more)), f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - loaded:.0f}")
    Console().print(mem)
    rows = {
        "floor (bare forward, last position only)": lambda: [floor(model, tl.parts, e, i) for e, i in zip(encs, ids)],
        "interface: transformer-lens": lambda: [tl.lens(e, r) for e, r in zip(encs, request)],
        "interface: nnsight": lambda: [nn.lens(e, r) for e, r in zip(encs, request)],
        "probe: run_lens (prefix sets)": lambda: run_lens(tl, prompts, batch_size=args.batch_size, progress=False),
        "naive (all positions, all layers)": lambda: [naive(model, e) for e in encs[:1]],
    }
    for dtype in dtypes[1:]:
        low_tl = load(args.model, dtype=dtype)
        low_model = load(args.model, backend="nnsight", dtype=dtype)._hf_model()
        rows[f"floor [{dtype}]"] = lambda m=low_model, t=low_tl: [floor(m, t.parts, e, i) for e, i in zip(encs, ids)]
        rows[f"probe: run_lens [{dtype}]"] = lambda t=low_tl: run_lens(
            t, prompts, batch_size=args.batch_size, progress=False
        )
    seconds = {name: timed(fn) for name, fn in rows.items()}
    # the naive row ran one batch only (it is slow and memory hungry): scale to all batches
    seconds["naive (all positions, all layers)"] *= len(encs)
    base = seconds["floor (bare forward, last position only)"]
    table = Table(
        title=f"logit lens at the last position: {args.model}, N = {len(prompts)}, batch {args.batch_size}, "
        f"{torch.get_num_threads()} torch thread(s); float32 unless marked"
    )
    for column in ("method", "seconds", "prompts/s", "ratio vs float32 floor"):
        table.add_column(column)
    for name, s in seconds.items():
        table.add_row(name, f"{s:.2f}", f"{len(prompts) / s:.1f}", f"{s / base:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
