"""``pivotlens interference`` and ``pivotlens interference-fig2``: gradient cosine between languages
per layer (PROM Sec. 2.1), plain or under PROM's pivoted objective, and PROM's Fig. 2 comparison."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import typer

from analyses.cli.settings import Settings, check_choice, check_layer
from analyses.interventions.pivoted_loss import PivotedObjective
from analyses.pipelines.interference import SPLITS, InterferenceSetup, fig2_comparison, measure, write_figures
from analyses.stats.interference import fig2_setting, last_layer_table, summarise_cosines
from probes.backend.gradients import REDUCTIONS
from probes.backend.languages import parse_languages
from probes.backend.models import model_depth
from probes.backend.store import ResultsStore, write_text_atomic
from probes.inputs.instruction_data import INSTRUCTIONS
from probes.interference import AGGREGATIONS, PAIRINGS, SUBSETS


def _setup(
    settings: Settings,
    batches: int,
    pairing: str,
    split: str,
    params: str,
    reduction: str,
    fp32: bool,
    aggregation: str,
    max_length: int,
    seed: int,
) -> InterferenceSetup:
    return InterferenceSetup(
        k=batches,
        batch_size=settings.batch_size,
        pairing=pairing,
        split=split,
        params=params,
        reduction=reduction,
        fp32=fp32,
        aggregation=aggregation,
        max_length=max_length,
        seed=seed,
    )


def write_tables(table: pd.DataFrame, out: Path, summary_layer: pd.DataFrame) -> list[Path]:
    """The tidy table (CSV + Parquet) and the per-layer and per-module summaries."""
    out.mkdir(parents=True, exist_ok=True)
    written = [
        out / "interference.csv",
        out / "interference.parquet",
        out / "summary_layer.csv",
        out / "summary_module.csv",
        out / "last_layer.csv",
    ]
    write_text_atomic(table.to_csv(index=False), written[0])
    table.to_parquet(written[1], index=False)
    write_text_atomic(summary_layer.to_csv(index=False), written[2])
    write_text_atomic(
        summarise_cosines(
            table,
            "module",
            by=[c for c in summary_layer.columns if c in ("target", "setting", "lang_a", "lang_b", "objective")],
        ).to_csv(index=False),
        written[3],
    )
    write_text_atomic(last_layer_table(summary_layer).to_csv(index=False), written[4])
    return written


def interference(
    ctx: typer.Context,
    langs: str = typer.Option("en,sw", help="Comma-separated languages: the first is paired with each of the others."),
    objective: str = typer.Option(
        "plain", help="plain (both losses at the output) or pivoted (the first language read out at layer n)."
    ),
    batches: int = typer.Option(
        8, "--batches", min=1, help="K: number of batch pairs (each side has --batch-size examples)."
    ),
    data: str = typer.Option(str(INSTRUCTIONS), help="Parallel instruction CSV (id,lang,instruction,response)."),
    split: str = typer.Option("all", help="all, train (held-out ids excluded) or held_out."),
    pairing: str = typer.Option(
        "independent", help="independent (two different batches) or parallel (same ids, translated)."
    ),
    params: str = typer.Option("all", help="all, blocks or matrices."),
    reduction: str = typer.Option("token_mean", help="token_mean or sequence_mean over response tokens."),
    fp32: bool = typer.Option(True, help="Dot products and norms in float32 (else the model's dtype)."),
    aggregation: str = typer.Option(
        "concat", help="concat (cosine of the concatenation) or mean (of per-tensor cosines)."
    ),
    layer: int = typer.Option(None, help="Pivoted: 0-based read-out layer n (default three quarters of the depth)."),
    alpha: float = typer.Option(0.1, help="Pivoted: label smoothing of L_{n,e}."),
    lam: float = typer.Option(0.1, help="Pivoted: weight lambda of L_{n,e}."),
    max_length: int = typer.Option(256, help="Tokens per example (cut from the right)."),
    seed: int = typer.Option(0, help="Seed of the batch draw."),
) -> None:
    """Gradient cosine per layer between the first language and each other one: tidy table
    (interference.csv/.parquet), summaries and figures with 95% bands in --out."""
    settings: Settings = ctx.obj
    codes = parse_languages(langs)
    _check_options(settings, params, reduction, aggregation, pairing, split, layer)
    if len(codes) < 2:
        raise typer.BadParameter("give at least two languages, e.g. --langs en,sw")
    if objective not in ("plain", "pivoted"):
        raise typer.BadParameter(f"--objective must be plain or pivoted, not {objective!r}")
    backend = settings.load_backend()
    pivot = PivotedObjective(layer, alpha, lam)
    readouts = pivot.readouts(backend.n_layers) if objective == "pivoted" else ()
    setup = replace(
        _setup(settings, batches, pairing, split, params, reduction, fp32, aggregation, max_length, seed),
        lang_a=codes[0],
        objective=objective,
        **dict(zip(("readout_a", "readout_b"), readouts)),
    )
    store = ResultsStore(settings.results)
    tables = [measure(backend, replace(setup, lang_b=other), data, store=store) for other in codes[1:]]
    table = pd.concat(tables, ignore_index=True)
    summary = summarise_cosines(table)
    out = settings.out_dir
    written = write_tables(table, out, summary)
    n_at = pivot.at(backend.n_layers) if objective == "pivoted" else None
    written += write_figures(out, model=backend.model_name, pivot_layer=n_at)
    typer.echo(
        last_layer_table(summary)[
            ["lang_a", "lang_b", "objective", "layer", "mean", "ci_low", "ci_high", "n"]
        ].to_string(index=False)
    )
    typer.echo(f"wrote {len(written)} files to {out}")


def interference_fig2(
    ctx: typer.Context,
    targets: str = typer.Option("sw", help="Comma-separated target languages."),
    pivot_lang: str = typer.Option("en", "--pivot", help="Pivot language (PROM: English)."),
    batches: int = typer.Option(8, "--batches", min=1, help="K: number of batch pairs per setting."),
    data: str = typer.Option(str(INSTRUCTIONS), help="Parallel instruction CSV."),
    split: str = typer.Option("all", help="all, train or held_out."),
    params: str = typer.Option("all", help="all, blocks or matrices."),
    layer: int = typer.Option(None, help="0-based read-out layer n (default three quarters of the depth)."),
    alpha: float = typer.Option(0.1, help="Label smoothing of L_{n,e}."),
    lam: float = typer.Option(0.1, help="Weight lambda of L_{n,e}."),
    max_length: int = typer.Option(256, help="Tokens per example."),
    seed: int = typer.Option(0, help="Seed of the batch draw."),
) -> None:
    """PROM Fig. 2: per target, gradient cosine per layer for target only, target + English and
    the pivoted objective (same batches), with 95% bands."""
    settings: Settings = ctx.obj
    codes = parse_languages(targets)
    parse_languages([pivot_lang])
    _check_options(settings, params, "token_mean", "concat", "independent", split, layer)
    backend = settings.load_backend()
    objective = PivotedObjective(layer, alpha, lam)
    setup = _setup(settings, batches, "independent", split, params, "token_mean", True, "concat", max_length, seed)
    store = ResultsStore(settings.results)
    table = pd.concat(
        [fig2_comparison(backend, data, t, pivot_lang, objective=objective, setup=setup, store=store) for t in codes],
        ignore_index=True,
    )
    table["setting"] = fig2_setting(table)
    table["target"] = table["lang_b"]
    summary = summarise_cosines(table, by=["target", "setting", "lang_a", "lang_b", "objective"])
    out = settings.out_dir
    written = write_tables(table, out, summary)
    written += write_figures(out, model=backend.model_name, pivot_layer=objective.at(backend.n_layers))
    typer.echo(
        last_layer_table(summary)[["target", "setting", "layer", "mean", "ci_low", "ci_high", "n"]].to_string(
            index=False
        )
    )
    typer.echo(f"wrote {len(written)} files to {out}")


def _check_options(
    settings: Settings, params: str, reduction: str, aggregation: str, pairing: str, split: str, layer: int | None
) -> None:
    """The option values, before the model loads."""
    check_choice(params, SUBSETS, "--params")
    check_choice(reduction, REDUCTIONS, "--reduction")
    check_choice(aggregation, AGGREGATIONS, "--aggregation")
    check_choice(pairing, PAIRINGS, "--pairing")
    check_choice(split, SPLITS, "--split")
    check_layer(layer, model_depth(settings.model), settings.model)


def register(app: typer.Typer) -> None:
    app.command("interference")(interference)
    app.command("interference-fig2")(interference_fig2)
