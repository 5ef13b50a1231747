"""``pivotlens recipes`` and ``pivotlens recipe-eval``: cross-lingual instruction-data recipes
(PLUG and its baselines, Zhang et al. 2023; docs/methods/plug-recipes.md) and what they do to a model. Training with
a recipe is ``pivotlens finetune --recipe NAME --langs ...`` (the one fine-tuning driver)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.interventions.recipes import PIVOT, RECIPES, recipe_training_set, write_jsonl
from analyses.pipelines.recipes import EvalConfig, analyse, measure_models, model_entries, write_outputs
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.inputs.instruction_data import HELD_OUT, INSTRUCTIONS


@dataclass(frozen=True, kw_only=True)
class RecipeOptions:
    recipe: Annotated[str, typer.Option(help=f"One of {', '.join(RECIPES)}.")]
    langs: Annotated[str, typer.Option(help="Comma-separated target languages, e.g. es,sw,zh.")]
    data: Annotated[Path, typer.Option(help="Parallel instructions CSV: id,lang,instruction,response.")] = INSTRUCTIONS
    pivot: Annotated[str, typer.Option(help="Pivot language (the paper: en).")] = PIVOT
    held_out: Annotated[
        int,
        typer.Option(
            min=0, help="The last N ids of the file are held out for the evaluation and left out (0: use every id)."
        ),
    ] = HELD_OUT

    def languages(self) -> list[str]:
        """``--langs``, checked with ``--recipe``."""
        if self.recipe not in RECIPES:
            raise PivotlensError(f"unknown recipe {self.recipe!r}; use one of {', '.join(RECIPES)}")
        return parse_languages(self.langs)


@options(RecipeOptions)
def recipes(ctx: typer.Context, opts: RecipeOptions) -> None:
    """Write the training set of one recipe to --out as <recipe>.jsonl (id, recipe, part, lang, prompt,
    response), for inspection or to train elsewhere."""
    settings: Settings = ctx.obj
    codes = opts.languages()
    records = recipe_training_set(opts.recipe, codes, opts.data, opts.pivot, opts.held_out)
    out = settings.out_dir / f"{opts.recipe}.jsonl"
    write_jsonl(records, out)
    parts = pd.Series([r.part for r in records]).value_counts()
    view = Table(title=f"{opts.recipe}: {len(records)} pairs ({', '.join(codes)}; pivot {opts.pivot})")
    view.add_column("part")
    view.add_column("pairs", justify="right")
    for part, count in parts.items():
        view.add_row(str(part), str(count))
    Console().print(view)
    typer.echo(f"wrote {out}")


@dataclass(frozen=True, kw_only=True)
class RecipeEvalOptions:
    """The options of ``recipe-eval``; the defaults are :class:`EvalConfig`'s."""

    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated model folders or names, optionally LABEL=PATH; "
            "include the base model (e.g. gemma-3-270m) to compare against it."
        ),
    ]
    langs: Annotated[str, typer.Option(help="Comma-separated target languages.")]
    data: Annotated[Path, typer.Option(help="Parallel instructions CSV (its held-out ids are asked).")] = Path(
        EvalConfig.data
    )
    held_out: Annotated[
        int, typer.Option(min=1, help="The last N ids of --data are asked (the ids training left out).")
    ] = EvalConfig.n_held_out
    reference: Annotated[str, typer.Option(help="Model label or recipe in the rows of Table 1.")] = "plug"
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Generated tokens per answer.")] = EvalConfig.max_new_tokens
    plug_max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Generated tokens per answer of a PLUG model (x_p, y_p and y_t).")
    ] = EvalConfig.plug_max_new_tokens
    inside: Annotated[bool, typer.Option(help="Lens, PROM lambda and interference per model.")] = EvalConfig.inside
    lens_limit: Annotated[
        int | None, typer.Option(min=1, help="Word-translation prompts per language for the lens.")
    ] = EvalConfig.lens_limit
    pairs: Annotated[int, typer.Option(min=2, help="Batch pairs per language for the interference.")] = (
        EvalConfig.interference_pairs
    )
    pair_batch: Annotated[int, typer.Option(min=1, help="Instructions per batch of a pair.")] = (
        EvalConfig.interference_batch_size
    )
    tie_margin: Annotated[float, typer.Option(min=0.0, help="chrF points within which a pair is a tie.")] = (
        EvalConfig.tie_margin
    )
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap replicates of the intervals.")] = EvalConfig.n_boot
    png: Annotated[bool, typer.Option(help="Also write each figure as PNG (needs kaleido's browser).")] = True

    def config(self, settings: Settings) -> EvalConfig:
        """The :class:`EvalConfig` of these options (answers in batches of ``--batch-size``)."""
        return EvalConfig(
            data=str(self.data),
            n_held_out=self.held_out,
            max_new_tokens=self.max_new_tokens,
            plug_max_new_tokens=self.plug_max_new_tokens,
            answer_batch_size=settings.batch_size,
            lens_limit=self.lens_limit,
            interference_pairs=self.pairs,
            interference_batch_size=self.pair_batch,
            inside=self.inside,
            n_boot=self.n_boot,
            tie_margin=self.tie_margin,
            backend=settings.backend_name,
            device=settings.device,
            dtype=settings.dtype,
        )


@options(RecipeEvalOptions)
def recipe_eval(ctx: typer.Context, opts: RecipeEvalOptions) -> None:
    """Compare fine-tuned models (and the base): answer language (LPR, WPR), chrF, the pairwise
    win/loss table (chrF as the judge), and lens, lambda and interference inside each model; tables
    and figures in --out."""
    settings: Settings = ctx.obj
    entries = model_entries([m for m in opts.models.split(",") if m.strip()])
    codes = parse_languages(opts.langs)
    config = opts.config(settings)
    measurements = measure_models(entries, codes, config, store=ResultsStore(settings.results))
    result = analyse(measurements, entries, reference=opts.reference, config=config)
    written = write_outputs(result, settings.out_dir, png=opts.png)
    view = Table(title="answers to held-out instructions (lang = all: mean over languages)")
    for column in ("model", "recipe", "variant", "lang", "LPR %", "WPR %", "chrF"):
        view.add_column(column)
    for row in result.comparison.to_dict("records"):
        wpr = "-" if pd.isna(row["wpr"]) else f"{100 * row['wpr']:.1f}"
        names = [str(row[c]) for c in ("model", "recipe", "variant", "lang")]
        view.add_row(*names, f"{100 * row['lpr']:.1f}", wpr, f"{row['chrf']:.1f}")
    Console().print(view)
    if result.table1 is not None:
        typer.echo(result.table1.to_string())
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("recipes")(recipes)
    app.command("recipe-eval")(recipe_eval)
