"""``pivotlens weight-change``, ``pivotlens swap``, ``pivotlens soup`` and ``pivotlens swap-replay``:
weight-change maps of fine-tuned checkpoints, merges by layer swapping (Bandarkar et al., ICLR
2025) or averaging, and the replay of the paper's Table 1.
For ``swap`` and ``soup`` the global ``--out`` is the merged model's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pandas as pd
import torch
import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.figures import save_figure
from analyses.figures.weight_change import weight_change_figure
from analyses.interventions.layer_swap import NON_LAYER, RECORD, SwapConfig, soup, swap
from analyses.pipelines.layer_swap import ReplaySettings, replay, train_experts, write_figures
from analyses.stats.weight_change import METRICS, weight_change
from probes.backend.errors import PivotlensError
from probes.backend.languages import parse_languages
from probes.backend.store import provenance, write_parquet_atomic

METRIC_HELP = f"Metric(s): {', '.join(METRICS)}; the heatmap shows the first."


@dataclass(frozen=True, kw_only=True)
class WeightChangeOptions:
    base: Annotated[str, typer.Option(help="The base checkpoint (embedded name, folder or Hugging Face id).")]
    tuned: Annotated[
        list[str], typer.Option(help="A fine-tuned checkpoint; repeat for several experts (two: their difference too).")
    ]
    label: Annotated[
        list[str] | None, typer.Option(help="A name per --tuned for the panels (default: the folder names).")
    ] = None
    metric: Annotated[list[str], typer.Option(help=METRIC_HELP)] = field(default_factory=lambda: list(METRICS))
    top_percent: Annotated[float, typer.Option(help="top_fraction: the share x% of the largest |ΔW| entries.")] = 1.0

    def labels(self) -> list[str]:
        """One panel name per ``--tuned`` (empty: the folder names), the metrics checked."""
        labels = list(self.label or [])
        if labels and len(labels) != len(self.tuned):
            raise PivotlensError(
                f"{len(labels)} --label for {len(self.tuned)} --tuned; give one label per checkpoint or none"
            )
        bad = [m for m in self.metric if m not in METRICS]
        if bad:
            raise PivotlensError(f"unknown metric {bad[0]!r}; use one of {', '.join(METRICS)}")
        return labels


@options(WeightChangeOptions)
def weight_change_command(ctx: typer.Context, opts: WeightChangeOptions) -> None:
    """Weight-change map per (layer, q/k/v/o/gate/up/down) of each --tuned against --base: a tidy
    table (weight_change.csv/.parquet: layer, module, metric, value, ...) and the heatmap."""
    labels = opts.labels()
    settings: Settings = ctx.obj
    folder = settings.out_dir
    maps: dict[str, pd.DataFrame] = {}
    for i, checkpoint in enumerate(opts.tuned):
        table = weight_change(opts.base, checkpoint, metrics=opts.metric, top_percent=opts.top_percent)
        name = labels[i] if labels else table.attrs["tuned"]
        maps[name] = table.assign(expert=name, base=table.attrs["base"])
    result = pd.concat(maps.values(), ignore_index=True)
    result.to_csv(folder / "weight_change.csv", index=False)
    params = {
        "base": opts.base,
        "tuned": list(opts.tuned),
        "metrics": list(opts.metric),
        "top_percent": opts.top_percent,
    }
    write_parquet_atomic(result, folder / "weight_change.parquet", provenance("weight_change", params))
    names = list(maps)
    difference = (names[0], names[1]) if len(names) == 2 else None
    fig = weight_change_figure(maps, opts.metric[0], difference=difference, top_percent=opts.top_percent)
    written = save_figure(fig, folder / f"weight_change_{opts.metric[0]}")
    typer.echo(f"wrote {folder / 'weight_change.csv'} and {', '.join(str(p) for p in written)}")


@dataclass(frozen=True, kw_only=True)
class SwapOptions:
    """The options of ``swap``: Algorithm 1's parameters, defaults :class:`SwapConfig`'s."""

    task_expert: Annotated[str, typer.Option(help="The task expert (fine-tuned on the task in English).")]
    lang_expert: Annotated[str, typer.Option(help="The language expert (fine-tuned on target-language instructions).")]
    bottom: Annotated[int, typer.Option(help="b: bottom layers taken from the language expert.")]
    top: Annotated[int, typer.Option(help="u: top layers taken from the language expert.")]
    transition_bottom: Annotated[
        int, typer.Option(help="t_b: layers after the bottom zone averaged from both experts.")
    ] = SwapConfig.transition_bottom
    transition_top: Annotated[int, typer.Option(help="t_u: layers before the top zone averaged from both experts.")] = (
        SwapConfig.transition_top
    )
    w_task: Annotated[float, typer.Option(help="Weight of the task expert in the transition zones.")] = (
        SwapConfig.w_task
    )
    w_lang: Annotated[float, typer.Option(help="Weight of the language expert in the transition zones.")] = (
        SwapConfig.w_lang
    )
    non_layer: Annotated[str, typer.Option(help=f"Embeddings, final norm, head: {', '.join(NON_LAYER)}.")] = (
        SwapConfig.non_layer
    )
    dtype: Annotated[str | None, typer.Option(help="Compute/output dtype (default: the experts').")] = None

    def config(self) -> SwapConfig:
        return SwapConfig(
            self.bottom,
            self.top,
            self.transition_bottom,
            self.transition_top,
            self.w_task,
            self.w_lang,
            self.non_layer,
        )


@options(SwapOptions)
def swap_command(ctx: typer.Context, opts: SwapOptions) -> None:
    """Layer swapping (Algorithm 1, line 5 with 'and'): a model folder with the merged weights,
    tokenizer, mergekit_config.yml and merge_record.json."""
    settings: Settings = ctx.obj
    folder = swap(
        opts.task_expert, opts.lang_expert, Path(settings.out), opts.config(), dtype=opts.dtype, device=settings.device
    )
    typer.echo(f"merged model in {folder} (record: {folder / RECORD})")


@dataclass(frozen=True, kw_only=True)
class SoupOptions:
    models: Annotated[list[str], typer.Argument(help="Two or more checkpoints fine-tuned from the same base.")]
    weights: Annotated[str | None, typer.Option(help="Comma-separated weights, one per model (default: equal).")] = None
    dtype: Annotated[str | None, typer.Option(help="Compute/output dtype (default: the inputs').")] = None

    def parsed_weights(self) -> list[float] | None:
        """``--weights`` as numbers (None: equal weights)."""
        try:
            return [float(w) for w in self.weights.split(",")] if self.weights else None
        except ValueError:
            raise PivotlensError(f"--weights must be comma-separated numbers, got {self.weights!r}") from None


@options(SoupOptions)
def soup_command(ctx: typer.Context, opts: SoupOptions) -> None:
    """Model soup: the weighted average of whole checkpoints, through the same mergekit path."""
    settings: Settings = ctx.obj
    weights = opts.parsed_weights()
    folder = soup(opts.models, Path(settings.out), weights, dtype=opts.dtype, device=settings.device)
    typer.echo(f"soup in {folder} (record: {folder / RECORD})")


def _numbers(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(value) for value in text.split(","))
    except ValueError:
        raise PivotlensError(f"{option} must be comma-separated integers, got {text!r}") from None


def _joined(values: tuple[int, ...] | tuple[str, ...]) -> str:
    return ",".join(map(str, values))


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    """The options of ``swap-replay``; the defaults are :class:`ReplaySettings`'s."""

    langs: Annotated[str, typer.Option(help="Languages of the language experts.")] = _joined(ReplaySettings.langs)
    task_steps: Annotated[int, typer.Option(min=1, help="Steps of the task expert.")] = ReplaySettings.task_steps
    lang_steps: Annotated[int, typer.Option(min=1, help="Steps of each language expert.")] = ReplaySettings.lang_steps
    n_eval: Annotated[int, typer.Option(min=1, help="Evaluation problems per language.")] = ReplaySettings.n_eval
    seed: Annotated[int, typer.Option(help="Seed of training and evaluation.")] = ReplaySettings.seed
    grid_bottom: Annotated[str, typer.Option(help="Bottom values of the grid.")] = _joined(ReplaySettings.grid_bottom)
    grid_top: Annotated[str, typer.Option(help="Top values of the grid.")] = _joined(ReplaySettings.grid_top)
    english: Annotated[
        bool, typer.Option(help="Also evaluate in English (--no-english: leave that to one process only).")
    ] = ReplaySettings.english
    threads: Annotated[int, typer.Option(min=1, help="Torch threads (1 is fastest on a busy machine).")] = 1
    only_experts: Annotated[str | None, typer.Option(help="Train these experts (e.g. task,sw) and stop.")] = None
    figures_only: Annotated[bool, typer.Option(help="Redraw the figures from the tables in --out and stop.")] = False

    def settings(self, base: str) -> ReplaySettings:
        return ReplaySettings(
            base=base,
            langs=tuple(parse_languages(self.langs)),
            task_steps=self.task_steps,
            lang_steps=self.lang_steps,
            n_eval=self.n_eval,
            seed=self.seed,
            english=self.english,
            grid_bottom=_numbers(self.grid_bottom, "--grid-bottom"),
            grid_top=_numbers(self.grid_top, "--grid-top"),
        )


@options(ReplayOptions)
def swap_replay(ctx: typer.Context, opts: ReplayOptions) -> None:
    """Layer-swapping replay (Bandarkar et al. 2025, Table 1) on --model: experts, weight-change
    maps, lens evidence, a suggested swap and its evaluation; tables and figures in --out."""
    settings: Settings = ctx.obj
    if opts.figures_only:
        typer.echo("\n".join(str(path) for path in write_figures(settings.out)))
        return
    replay_settings = opts.settings(settings.model)
    torch.set_num_threads(opts.threads)
    if opts.only_experts:
        for key, folder in train_experts(replay_settings, opts.only_experts.split(",")).items():
            typer.echo(f"{key} {folder}")
        return
    results = replay(replay_settings, settings.out)
    write_figures(settings.out)
    typer.echo(results.table1.to_string(index=False))
    typer.echo(results.suggestions.to_string(index=False))


def register(app: typer.Typer) -> None:
    app.command("weight-change")(weight_change_command)
    app.command("swap")(swap_command)
    app.command("soup")(soup_command)
    app.command("swap-replay")(swap_replay)
