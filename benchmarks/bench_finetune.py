"""Training throughput of the fine-tuning driver against a bare torch training loop.

bare (driver loss) : the same model with the same LoRA adapters (or all weights), ``AdamW``
          over the trainable parameters, and per batch ``lens_loss(...).backward();
          optimizer.step()``, the driver's loss (only the response positions go through the
          262k-row unembedding), batches in file order: the Trainer's overhead alone
bare (HF loss)     : the same loop with ``model(**inputs, labels=labels).loss``, the usual bare
          loop, which unembeds every position (prompt and padding too)
driver  : :func:`analyses.interventions.finetune.finetune` (``transformers`` Trainer subclass,
          loss through ``lens_loss``, scheduler, logging and the CSV training log), timed by the
          driver around ``trainer.train`` (model loading and the final save excluded)

Both see the same examples (one recipe's training set, one epoch of ``steps x batch_size``
examples); the Trainer shuffles them into different batches, so padding differs a little:
throughput counts real (non-padding) tokens. Usage: python benchmarks/bench_finetune.py
[--model M] [--recipe plug] [--langs es] [--steps 4] [--batch-size 2] [--method lora]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from rich.console import Console
from rich.table import Table
from transformers import set_seed

from analyses.interventions.finetune import Collator, Example, FinetuneConfig, _prepare_model, build_rows, finetune
from analyses.interventions.recipes import PIVOT, build_recipe, parallel_items
from probes.backend.gradients import lens_loss
from probes.backend.models import load_hf
from probes.inputs.instruction_data import load_instructions, pad_id, split_held_out


def bare_loop(model, batches, learning_rate: float, driver_loss: bool) -> float:
    """Seconds for one optimizer step per batch (forward, backward, AdamW step)."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    start = time.perf_counter()
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if driver_loss:
            loss = lens_loss(model, inputs, batch["labels"])
        else:
            loss = model(**inputs, labels=batch["labels"], use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--recipe", default="plug")
    parser.add_argument("--langs", default="es")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--method", default="lora", choices=["lora", "full"])
    parser.add_argument("--max-length", type=int, default=192)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread, as every model job here

    langs = args.langs.split(",")
    train, _ = split_held_out(load_instructions(langs=[PIVOT, *langs]))
    records = build_recipe(args.recipe, parallel_items(train, langs))[: args.steps * args.batch_size]
    examples = [(r.prompt, r.response) for r in records]
    config = FinetuneConfig(
        method=args.method,
        max_steps=args.steps,
        batch_size=args.batch_size,
        warmup_ratio=0.0,
        max_length=args.max_length,
        logging_steps=args.steps,
        save_steps=10 * args.steps,
    )

    set_seed(config.seed)
    model, tokenizer, _, _ = load_hf(args.model)
    rows = build_rows(tokenizer, [Example(*e) for e in examples], config)
    collator = Collator(pad_id(tokenizer))
    batches = [collator(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    model = _prepare_model(model, config)
    bare_loop(model, batches[:1], config.learning_rate, driver_loss=True)  # warm-up, not timed
    bare_seconds = bare_loop(model, batches, config.learning_rate, driver_loss=True)
    hf_seconds = bare_loop(model, batches, config.learning_rate, driver_loss=False)
    del model

    with tempfile.TemporaryDirectory() as out:
        driver_seconds = finetune(args.model, examples, out, config, resume=False, progress=False).seconds

    table = Table(
        title=f"training throughput: {args.model}, {args.method}, {args.recipe} ({args.langs}), "
        f"{args.steps} steps x {args.batch_size} ({tokens} tokens)"
    )
    for column in ("loop", "seconds", "tokens/s"):
        table.add_column(column, justify="right")
    table.add_row("bare torch, driver loss", f"{bare_seconds:.1f}", f"{tokens / bare_seconds:.1f}")
    table.add_row("bare torch, HF loss", f"{hf_seconds:.1f}", f"{tokens / hf_seconds:.1f}")
    table.add_row("driver", f"{driver_seconds:.1f}", f"{tokens / driver_seconds:.1f}")
    Console().print(table)
    print(
        f"throughput ratio driver / bare (same loss): {bare_seconds / driver_seconds:.2f}; "
        f"driver / bare (HF loss): {hf_seconds / driver_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
