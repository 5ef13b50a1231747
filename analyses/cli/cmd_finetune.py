"""``pivotlens finetune`` (plain or PROM's pivoted objective, LoRA or full; on an instruction CSV,
a JSONL file, or one of PLUG's cross-lingual data recipes with ``--recipe``) and ``pivotlens
prom-fig3`` (fine-tune plain vs pivoted, then re-measure pivot probability and interference)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from analyses.cli.options import PivotOptions, options
from analyses.cli.settings import Settings
from analyses.interventions.finetune import FinetuneConfig, examples_from_instructions, finetune, load_jsonl
from analyses.interventions.recipes import PIVOT, RECIPES, train_recipe
from analyses.pipelines.prom_fig3 import run_fig3
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.inputs.instruction_data import HELD_OUT, INSTRUCTIONS, load_instructions, split_held_out


@dataclass(frozen=True, kw_only=True)
class TrainingOptions(PivotOptions):
    """The training options of ``finetune`` and ``prom-fig3``; the defaults are :class:`FinetuneConfig`'s."""

    data: Annotated[str, typer.Option(help="Instruction CSV (id,lang,instruction,response).")] = str(INSTRUCTIONS)
    method: Annotated[str, typer.Option(help="lora (merged into the weights at the end) or full.")] = (
        FinetuneConfig.method
    )
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps (per run).")] = FinetuneConfig.max_steps
    train_batch_size: Annotated[int, typer.Option(min=1, help="Examples per step (per side for pivoted).")] = (
        FinetuneConfig.batch_size
    )
    lr: Annotated[float, typer.Option(help="Peak learning rate (PROM, full fine-tuning: 2e-5).")] = (
        FinetuneConfig.learning_rate
    )
    seed: Annotated[int, typer.Option(help="Seed (data order, LoRA init).")] = FinetuneConfig.seed
    max_length: Annotated[int, typer.Option(help="Tokens per example.")] = FinetuneConfig.max_length
    save_steps: Annotated[int, typer.Option(help="Checkpoint every this many steps.")] = FinetuneConfig.save_steps

    def config(self, settings: Settings, **more: object) -> FinetuneConfig:
        """The :class:`FinetuneConfig` of these options (``more``: further fields of it)."""
        return FinetuneConfig(
            method=self.method,
            max_steps=self.steps,
            batch_size=self.train_batch_size,
            learning_rate=self.lr,
            seed=self.seed,
            max_length=self.max_length,
            pivot=self.pivoted_objective(),
            save_steps=self.save_steps,
            device=settings.device,
            dtype=settings.dtype,
            **more,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, kw_only=True)
class FinetuneOptions(TrainingOptions):
    data: Annotated[
        str,
        typer.Option(
            help="Instruction CSV (id,lang,instruction,response) or JSONL "
            "(prompt, response[, pivot_prompt, pivot_response])."
        ),
    ] = str(INSTRUCTIONS)
    lang: Annotated[str, typer.Option(help="CSV: target language.")] = "sw"
    pivot: Annotated[
        str | None,
        typer.Option(
            help="CSV: pivot language paired with each target example (e.g. en); plain adds "
            "its pairs as ordinary examples (t+e), pivoted reads them out at layer n. "
            "--recipe: the pivot language (default en)."
        ),
    ] = None
    recipe: Annotated[
        str | None,
        typer.Option(
            help=f"CSV: train on this cross-lingual data recipe (PLUG, Zhang et al. 2023): "
            f"{', '.join(RECIPES)}; the model folder gets a recipe.json."
        ),
    ] = None
    langs: Annotated[str | None, typer.Option(help="--recipe: comma-separated target languages, e.g. es,sw,zh.")] = None
    held_out: Annotated[
        int, typer.Option(min=0, help="CSV: the last N ids are held out for evaluation and never trained on.")
    ] = HELD_OUT
    objective: Annotated[
        str, typer.Option(help="plain (every pair at the output) or pivoted (lambda * L_{n,e} + L_{N,t}).")
    ] = FinetuneConfig.objective
    grad_accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps.")] = FinetuneConfig.grad_accum
    pivot_head: Annotated[
        str, typer.Option(help="Pivoted: own (the model's final norm + head) or separate (a trainable copy).")
    ] = FinetuneConfig.pivot_head
    lora_r: Annotated[int, typer.Option(help="LoRA rank (alpha = 2 r).")] = FinetuneConfig.lora_r
    logging_steps: Annotated[int, typer.Option(help="Log every this many steps.")] = FinetuneConfig.logging_steps
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its last checkpoint (--no-resume: start over).")
    ] = True

    def finetune_config(self, settings: Settings) -> FinetuneConfig:
        return self.config(
            settings,
            objective=self.objective,
            grad_accum=self.grad_accum,
            pivot_head=self.pivot_head,
            lora_r=self.lora_r,
            lora_alpha=2 * self.lora_r,
            logging_steps=self.logging_steps,
        )


@options(FinetuneOptions)
def finetune_cmd(ctx: typer.Context, opts: FinetuneOptions) -> None:
    """Fine-tune --model and write a model folder (with tokenizer), training_log.csv and
    checkpoints to --out (with --recipe also recipe.json)."""
    settings: Settings = ctx.obj
    opts.check_layer(settings.model)
    config = opts.finetune_config(settings)
    if opts.recipe is not None:
        if opts.recipe not in RECIPES:
            raise PivotlensError(f"unknown recipe {opts.recipe!r}; use one of {', '.join(RECIPES)}")
        if not opts.langs or opts.data.endswith(".jsonl") or opts.objective != "plain":
            raise PivotlensError("--recipe needs --langs, an instruction CSV as --data and --objective plain")
        result = train_recipe(
            settings.model,
            opts.recipe,
            parse_languages(opts.langs),
            Path(settings.out),
            config,
            data=opts.data,
            pivot=opts.pivot or PIVOT,
            n_held_out=opts.held_out,
            resume=opts.resume,
        )
    else:
        if opts.data.endswith(".jsonl"):
            examples = load_jsonl(opts.data)
        else:
            parse_languages([opts.lang] + ([opts.pivot] if opts.pivot else []))
            table = load_instructions(opts.data)
            examples = examples_from_instructions(
                split_held_out(table, opts.held_out)[0] if opts.held_out else table, opts.lang, opts.pivot
            )
        result = finetune(settings.model, examples, Path(settings.out), config, resume=opts.resume)
    log = result.log
    typer.echo(
        f"trained {int(log['step'].max())} steps in {result.seconds:.0f} s (resumed from {result.resumed_from}); "
        f"loss {log['loss'].iloc[0]:.3f} -> {log['loss'].iloc[-1]:.3f}"
    )
    typer.echo(f"model folder: {result.model_dir}")


@dataclass(frozen=True, kw_only=True)
class Fig3Options(TrainingOptions):
    target: Annotated[str, typer.Option(help="Target language.")] = "sw"
    pivot: Annotated[str, typer.Option(help="Pivot language.")] = PIVOT
    max_length: Annotated[int, typer.Option(help="Tokens per example.")] = 128
    batches: Annotated[int, typer.Option(min=1, help="Interference: batch pairs (held-out instructions).")] = 4
    params: Annotated[str, typer.Option(help="Interference: all, blocks or matrices.")] = "blocks"
    limit: Annotated[
        int | None, typer.Option(min=1, help="Lens: only the first N target prompts (a quick subset; default all).")
    ] = None


@options(Fig3Options)
def prom_fig3(ctx: typer.Context, opts: Fig3Options) -> None:
    """PROM Fig. 3, short: fine-tune plain (t+e) and pivoted, then the pivot probability and the
    interference of the base and both fine-tuned models, tables and figures in --out."""
    settings: Settings = ctx.obj
    opts.check_layer(settings.model)
    parse_languages([opts.target, opts.pivot])

    results = run_fig3(
        settings.out,
        base=settings.model,
        data=opts.data,
        target=opts.target,
        pivot=opts.pivot,
        config=opts.config(settings),
        k=opts.batches,
        batch_size=settings.batch_size,
        max_length=opts.max_length,
        params=opts.params,
        limit=opts.limit,
        store=ResultsStore(settings.results),
    )
    typer.echo(results.summary.to_string(index=False))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)
    app.command("prom-fig3")(prom_fig3)
