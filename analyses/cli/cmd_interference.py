"""``pivotlens interference`` and ``pivotlens interference-fig2``: gradient cosine between languages
per layer (PROM Sec. 2.1), plain or under PROM's pivoted objective, and PROM's Fig. 2 comparison."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from analyses.cli.options import PivotOptions, options
from analyses.cli.settings import Settings, check_choice
from analyses.pipelines.interference import (
    ALL_PARAMS,
    SPLITS,
    InterferenceSetup,
    fig2_comparison,
    measure,
    write_figures,
)
from analyses.stats.interference import fig2_setting, last_layer_table, summarise_cosines
from probes.backend.gradients import REDUCTIONS
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore, write_text_atomic
from probes.inputs.instruction_data import INSTRUCTIONS
from probes.interference import AGGREGATIONS, PAIRINGS, SUBSETS


@dataclass(frozen=True, kw_only=True)
class MeasureOptions(PivotOptions):
    """The options of ``interference`` and ``interference-fig2``: which batch pairs, and which
    parameters' gradients; the defaults are :class:`InterferenceSetup`'s."""

    batches: Annotated[
        int, typer.Option(min=1, help="K: number of batch pairs (each side has --batch-size examples).")
    ] = InterferenceSetup.k
    data: Annotated[str, typer.Option(help="Parallel instruction CSV (id,lang,instruction,response).")] = str(
        INSTRUCTIONS
    )
    split: Annotated[str, typer.Option(help="all, train (held-out ids excluded) or held_out.")] = (
        InterferenceSetup.split
    )
    params: Annotated[str, typer.Option(help="all, blocks or matrices.")] = ALL_PARAMS
    max_length: Annotated[int | None, typer.Option(help="Tokens per example (cut from the right).")] = (
        InterferenceSetup.max_length
    )
    seed: Annotated[int, typer.Option(help="Seed of the batch draw.")] = InterferenceSetup.seed

    def check(self, settings: Settings) -> None:
        """The option values, before the model loads."""
        check_choice(self.params, SUBSETS, "--params")
        check_choice(self.split, SPLITS, "--split")
        self.check_layer(settings.model)

    def setup(self, settings: Settings) -> InterferenceSetup:
        """The :class:`InterferenceSetup` of these options (``--batch-size`` examples per batch)."""
        return InterferenceSetup(
            k=self.batches,
            batch_size=settings.batch_size,
            split=self.split,
            params=self.params,
            max_length=self.max_length,
            seed=self.seed,
        )


@dataclass(frozen=True, kw_only=True)
class InterferenceOptions(MeasureOptions):
    langs: Annotated[
        str, typer.Option(help="Comma-separated languages: the first is paired with each of the others.")
    ] = f"{InterferenceSetup.lang_a},{InterferenceSetup.lang_b}"
    objective: Annotated[
        str,
        typer.Option(help="plain (both losses at the output) or pivoted (the first language read out at layer n)."),
    ] = InterferenceSetup.objective
    pairing: Annotated[
        str, typer.Option(help="independent (two different batches) or parallel (same ids, translated).")
    ] = InterferenceSetup.pairing
    reduction: Annotated[str, typer.Option(help="token_mean or sequence_mean over response tokens.")] = (
        InterferenceSetup.reduction
    )
    fp32: Annotated[bool, typer.Option(help="Dot products and norms in float32 (else the model's dtype).")] = (
        InterferenceSetup.fp32
    )
    aggregation: Annotated[
        str, typer.Option(help="concat (cosine of the concatenation) or mean (of per-tensor cosines).")
    ] = InterferenceSetup.aggregation

    def setup(self, settings: Settings) -> InterferenceSetup:
        return replace(
            super().setup(settings),
            objective=self.objective,
            pairing=self.pairing,
            reduction=self.reduction,
            fp32=self.fp32,
            aggregation=self.aggregation,
        )

    def check(self, settings: Settings) -> None:
        check_choice(self.reduction, REDUCTIONS, "--reduction")
        check_choice(self.aggregation, AGGREGATIONS, "--aggregation")
        check_choice(self.pairing, PAIRINGS, "--pairing")
        super().check(settings)


@dataclass(frozen=True, kw_only=True)
class Fig2Options(MeasureOptions):
    targets: Annotated[str, typer.Option(help="Comma-separated target languages.")] = InterferenceSetup.lang_b
    pivot: Annotated[str, typer.Option(help="Pivot language (PROM: English).")] = InterferenceSetup.lang_a


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


@options(InterferenceOptions)
def interference(ctx: typer.Context, opts: InterferenceOptions) -> None:
    """Gradient cosine per layer between the first language and each other one: tidy table
    (interference.csv/.parquet), summaries and figures with 95% bands in --out."""
    settings: Settings = ctx.obj
    codes = parse_languages(opts.langs)
    opts.check(settings)
    if len(codes) < 2:
        raise typer.BadParameter("give at least two languages, e.g. --langs en,sw")
    if opts.objective not in ("plain", "pivoted"):
        raise typer.BadParameter(f"--objective must be plain or pivoted, not {opts.objective!r}")
    backend = settings.load_backend()
    pivot = opts.pivoted_objective()
    readouts = pivot.readouts(backend.n_layers) if opts.objective == "pivoted" else ()
    setup = replace(opts.setup(settings), lang_a=codes[0], **dict(zip(("readout_a", "readout_b"), readouts)))
    store = ResultsStore(settings.results)
    tables = [measure(backend, replace(setup, lang_b=other), opts.data, store=store) for other in codes[1:]]
    table = pd.concat(tables, ignore_index=True)
    summary = summarise_cosines(table)
    out = settings.out_dir
    written = write_tables(table, out, summary)
    n_at = pivot.at(backend.n_layers) if opts.objective == "pivoted" else None
    written += write_figures(out, model=backend.model_name, pivot_layer=n_at)
    typer.echo(
        last_layer_table(summary)[
            ["lang_a", "lang_b", "objective", "layer", "mean", "ci_low", "ci_high", "n"]
        ].to_string(index=False)
    )
    typer.echo(f"wrote {len(written)} files to {out}")


@options(Fig2Options)
def interference_fig2(ctx: typer.Context, opts: Fig2Options) -> None:
    """PROM Fig. 2: per target, gradient cosine per layer for target only, target + English and
    the pivoted objective (same batches), with 95% bands."""
    settings: Settings = ctx.obj
    codes = parse_languages(opts.targets)
    parse_languages([opts.pivot])
    opts.check(settings)
    backend = settings.load_backend()
    objective = opts.pivoted_objective()
    setup = opts.setup(settings)
    store = ResultsStore(settings.results)
    table = pd.concat(
        [
            fig2_comparison(backend, opts.data, t, opts.pivot, objective=objective, setup=setup, store=store)
            for t in codes
        ],
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


def register(app: typer.Typer) -> None:
    app.command("interference")(interference)
    app.command("interference-fig2")(interference_fig2)
