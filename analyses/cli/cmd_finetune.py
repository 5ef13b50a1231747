"""``pivotlens finetune`` (plain or PROM's pivoted objective, LoRA or full; on an instruction CSV,
a JSONL file, or one of PLUG's cross-lingual data recipes with ``--recipe``) and ``pivotlens
prom-fig3`` (fine-tune plain vs pivoted, then re-measure pivot probability and interference)."""

from __future__ import annotations

from pathlib import Path

import typer

from analyses.cli.settings import Settings
from analyses.interventions.finetune import FinetuneConfig, examples_from_instructions, finetune, load_jsonl
from analyses.interventions.pivoted_loss import PivotedObjective
from analyses.interventions.recipes import PIVOT, RECIPES, train_recipe
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.inputs.instruction_data import HELD_OUT, INSTRUCTIONS, load_instructions, split_held_out


def _config(
    settings: Settings,
    objective: str,
    method: str,
    steps: int,
    train_batch_size: int,
    grad_accum: int,
    lr: float,
    seed: int,
    max_length: int,
    layer: int | None,
    alpha: float,
    lam: float,
    pivot_head: str,
    lora_r: int,
    save_steps: int,
    logging_steps: int,
) -> FinetuneConfig:
    return FinetuneConfig(
        objective=objective,
        method=method,
        max_steps=steps,
        batch_size=train_batch_size,
        grad_accum=grad_accum,
        learning_rate=lr,
        seed=seed,
        max_length=max_length,
        pivot=PivotedObjective(layer, alpha, lam),
        pivot_head=pivot_head,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        save_steps=save_steps,
        logging_steps=logging_steps,
        device=settings.device,
        dtype=settings.dtype,
    )


_OBJECTIVE = typer.Option("plain", help="plain (every pair at the output) or pivoted (lambda * L_{n,e} + L_{N,t}).")
_METHOD = typer.Option("lora", help="lora (merged into the weights at the end) or full.")


def finetune_cmd(
    ctx: typer.Context,
    data: str = typer.Option(
        str(INSTRUCTIONS),
        help="Instruction CSV (id,lang,instruction,response) or JSONL "
        "(prompt, response[, pivot_prompt, pivot_response]).",
    ),
    lang: str = typer.Option("sw", help="CSV: target language."),
    pivot: str = typer.Option(
        None,
        help="CSV: pivot language paired with each target example (e.g. en); plain adds "
        "its pairs as ordinary examples (t+e), pivoted reads them out at layer n. "
        "--recipe: the pivot language (default en).",
    ),
    recipe: str = typer.Option(
        None,
        help=f"CSV: train on this cross-lingual data recipe (PLUG, Zhang et al. 2023): "
        f"{', '.join(RECIPES)}; the model folder gets a recipe.json.",
    ),
    langs: str = typer.Option(None, help="--recipe: comma-separated target languages, e.g. es,sw,zh."),
    held_out: int = typer.Option(
        HELD_OUT, min=0, help="CSV: the last N ids are held out for evaluation and never trained on."
    ),
    objective: str = _OBJECTIVE,
    method: str = _METHOD,
    steps: int = typer.Option(300, min=1, help="Optimizer steps."),
    train_batch_size: int = typer.Option(4, min=1, help="Examples per step (per side for pivoted)."),
    grad_accum: int = typer.Option(1, min=1, help="Gradient accumulation steps."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (PROM, full fine-tuning: 2e-5)."),
    seed: int = typer.Option(0, help="Seed (data order, LoRA init)."),
    max_length: int = typer.Option(256, help="Tokens per example."),
    layer: int = typer.Option(None, help="Pivoted: 0-based read-out layer n (default three quarters of the depth)."),
    alpha: float = typer.Option(0.1, help="Pivoted: label smoothing of L_{n,e}."),
    lam: float = typer.Option(0.1, help="Pivoted: weight lambda of L_{n,e}."),
    pivot_head: str = typer.Option(
        "own", help="Pivoted: own (the model's final norm + head) or separate (a trainable copy)."
    ),
    lora_r: int = typer.Option(8, help="LoRA rank (alpha = 2 r)."),
    save_steps: int = typer.Option(50, help="Checkpoint every this many steps."),
    logging_steps: int = typer.Option(10, help="Log every this many steps."),
    resume: bool = typer.Option(
        True, help="Continue an interrupted run from its last checkpoint (--no-resume: start over)."
    ),
) -> None:
    """Fine-tune --model and write a model folder (with tokenizer), training_log.csv and
    checkpoints to --out (with --recipe also recipe.json)."""
    settings: Settings = ctx.obj
    config = _config(
        settings,
        objective,
        method,
        steps,
        train_batch_size,
        grad_accum,
        lr,
        seed,
        max_length,
        layer,
        alpha,
        lam,
        pivot_head,
        lora_r,
        save_steps,
        logging_steps,
    )
    if recipe is not None:
        if recipe not in RECIPES:
            raise PivotlensError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}")
        if not langs or data.endswith(".jsonl") or objective != "plain":
            raise PivotlensError("--recipe needs --langs, an instruction CSV as --data and --objective plain")
        result = train_recipe(
            settings.model,
            recipe,
            parse_languages(langs),
            Path(settings.out),
            config,
            data=data,
            pivot=pivot or PIVOT,
            n_held_out=held_out,
            resume=resume,
        )
    else:
        if data.endswith(".jsonl"):
            examples = load_jsonl(data)
        else:
            parse_languages([lang] + ([pivot] if pivot else []))
            table = load_instructions(data)
            examples = examples_from_instructions(
                split_held_out(table, held_out)[0] if held_out else table, lang, pivot
            )
        result = finetune(settings.model, examples, Path(settings.out), config, resume=resume)
    log = result.log
    typer.echo(
        f"trained {int(log['step'].max())} steps in {result.seconds:.0f} s (resumed from {result.resumed_from}); "
        f"loss {log['loss'].iloc[0]:.3f} -> {log['loss'].iloc[-1]:.3f}"
    )
    typer.echo(f"model folder: {result.model_dir}")


def prom_fig3(
    ctx: typer.Context,
    target: str = typer.Option("sw", help="Target language."),
    pivot: str = typer.Option("en", help="Pivot language."),
    data: str = typer.Option(str(INSTRUCTIONS), help="Instruction CSV."),
    method: str = _METHOD,
    steps: int = typer.Option(300, min=1, help="Optimizer steps per run."),
    train_batch_size: int = typer.Option(4, min=1, help="Examples per step (per side for pivoted)."),
    lr: float = typer.Option(2e-4, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed."),
    max_length: int = typer.Option(128, help="Tokens per example."),
    layer: int = typer.Option(None, help="0-based read-out layer n (default three quarters of the depth)."),
    alpha: float = typer.Option(0.1, help="Label smoothing of L_{n,e}."),
    lam: float = typer.Option(0.1, help="Weight lambda of L_{n,e}."),
    batches: int = typer.Option(4, "--batches", min=1, help="Interference: batch pairs (held-out instructions)."),
    params: str = typer.Option("blocks", help="Interference: all, blocks or matrices."),
    save_steps: int = typer.Option(50, help="Checkpoint every this many steps."),
) -> None:
    """PROM Fig. 3, short: fine-tune plain (t+e) and pivoted, then the pivot probability and the
    interference of the base and both fine-tuned models, tables and figures in --out."""
    from analyses.pipelines.prom_fig3 import run_fig3

    settings: Settings = ctx.obj
    parse_languages([target, pivot])
    config = _config(
        settings,
        "plain",
        method,
        steps,
        train_batch_size,
        1,
        lr,
        seed,
        max_length,
        layer,
        alpha,
        lam,
        "own",
        8,
        save_steps,
        10,
    )
    results = run_fig3(
        settings.out,
        base=settings.model,
        data=data,
        target=target,
        pivot=pivot,
        config=config,
        k=batches,
        batch_size=settings.batch_size,
        max_length=max_length,
        params=params,
        store=ResultsStore(settings.results),
    )
    typer.echo(results.summary.to_string(index=False))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)
    app.command("prom-fig3")(prom_fig3)
