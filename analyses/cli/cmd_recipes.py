"""``pivotlens recipes`` and ``pivotlens recipe-eval``: cross-lingual instruction-data recipes
(PLUG and its baselines, Zhang et al. 2023; docs/methods/plug-recipes.md) and what they do to a model. Training with
a recipe is ``pivotlens finetune --recipe NAME --langs ...`` (the one fine-tuning driver)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings
from analyses.interventions.recipes import PIVOT, RECIPES, recipe_training_set, write_jsonl
from analyses.pipelines.recipes import EvalConfig, analyse, measure_models, model_entries, write_outputs
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.inputs.instruction_data import HELD_OUT, INSTRUCTIONS

_HELD_OUT = typer.Option(
    HELD_OUT,
    "--held-out",
    min=0,
    help="The last N ids of the file are held out for the evaluation and left out (0: use every id).",
)


def recipes(
    recipe: str = typer.Option(..., "--recipe", help=f"One of {', '.join(RECIPES)}."),
    langs: str = typer.Option(..., "--langs", help="Comma-separated target languages, e.g. es,sw,zh."),
    out: Path = typer.Option(..., "--out", help="JSONL file to write (id, recipe, part, lang, prompt, response)."),
    data: Path = typer.Option(INSTRUCTIONS, "--data", help="Parallel instructions CSV: id,lang,instruction,response."),
    pivot: str = typer.Option(PIVOT, "--pivot", help="Pivot language (the paper: en)."),
    held_out: int = _HELD_OUT,
) -> None:
    """Write the training set of one recipe, for inspection or to train elsewhere."""
    if recipe not in RECIPES:
        raise PivotlensError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}")
    codes = parse_languages(langs)
    records = recipe_training_set(recipe, codes, data, pivot, held_out)
    write_jsonl(records, out)
    parts = pd.Series([r.part for r in records]).value_counts()
    view = Table(title=f"{recipe}: {len(records)} pairs ({', '.join(codes)}; pivot {pivot})")
    view.add_column("part")
    view.add_column("pairs", justify="right")
    for part, count in parts.items():
        view.add_row(str(part), str(count))
    Console().print(view)
    typer.echo(f"wrote {out}")


def recipe_eval(
    ctx: typer.Context,
    models: str = typer.Option(
        ...,
        "--models",
        help="Comma-separated model folders or names, optionally LABEL=PATH; "
        "include the base model (e.g. gemma-3-270m) to compare against it.",
    ),
    langs: str = typer.Option(..., "--langs", help="Comma-separated target languages."),
    out: Path = typer.Option(..., "--out", help="Folder for the tables and figures."),
    data: Path = typer.Option(INSTRUCTIONS, "--data", help="Parallel instructions CSV (its held-out ids are asked)."),
    held_out: int = typer.Option(
        HELD_OUT, "--held-out", min=1, help="The last N ids of --data are asked (the ids training left out)."
    ),
    reference: str = typer.Option("plug", "--reference", help="Model label or recipe in the rows of Table 1."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Generated tokens per answer."),
    plug_max_new_tokens: int = typer.Option(
        256, "--plug-max-new-tokens", min=1, help="Generated tokens per answer of a PLUG model (x_p, y_p and y_t)."
    ),
    inside: bool = typer.Option(True, "--inside/--no-inside", help="Lens, PROM lambda and interference per model."),
    lens_limit: int = typer.Option(
        60, "--lens-limit", min=1, help="Word-translation prompts per language for the lens."
    ),
    pairs: int = typer.Option(4, "--pairs", min=2, help="Batch pairs per language for the interference."),
    pair_batch: int = typer.Option(4, "--pair-batch", min=1, help="Instructions per batch of a pair."),
    tie_margin: float = typer.Option(1.0, "--tie-margin", min=0.0, help="chrF points within which a pair is a tie."),
    n_boot: int = typer.Option(1000, "--n-boot", min=0, help="Bootstrap replicates of the intervals."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also write each figure as PNG (needs kaleido's browser)."),
) -> None:
    """Compare fine-tuned models (and the base): answer language (LPR, WPR), chrF, the pairwise
    win/loss table (chrF as the judge), and lens, lambda and interference inside each model."""
    settings: Settings = ctx.obj
    entries = model_entries([m for m in models.split(",") if m.strip()])
    codes = parse_languages(langs)
    config = EvalConfig(
        data=str(data),
        n_held_out=held_out,
        max_new_tokens=max_new_tokens,
        plug_max_new_tokens=plug_max_new_tokens,
        answer_batch_size=settings.batch_size,
        lens_limit=lens_limit,
        interference_pairs=pairs,
        interference_batch_size=pair_batch,
        inside=inside,
        n_boot=n_boot,
        tie_margin=tie_margin,
        backend=settings.backend_name,
        device=settings.device,
        dtype=settings.dtype,
    )
    measurements = measure_models(entries, codes, config, store=ResultsStore(settings.results))
    result = analyse(measurements, entries, reference=reference, config=config)
    written = write_outputs(result, out, png=png)
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
    typer.echo(f"wrote {len(written)} files to {out}")


def register(app: typer.Typer) -> None:
    app.command("recipes")(recipes)
    app.command("recipe-eval")(recipe_eval)
