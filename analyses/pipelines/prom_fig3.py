"""PROM Fig. 3 (Sec. 3.3), short version: fine-tune a model on target + English instructions with
the plain objective (t+e) and with the pivoted objective, then re-measure, for the base model and
both fine-tuned ones, the pivot probability per layer (logit lens, :func:`analyses.pipelines.lens.run_languages`)
and the gradient interference between English and the target on held-out instructions.

Every step is resumable: fine-tuning from its checkpoints, measurements through the results store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from analyses.figures import save_figure
from analyses.figures.interference import cosine_figure, loss_figure, pivot_probability_figure
from analyses.interventions.finetune import FinetuneConfig, examples_from_instructions, finetune
from analyses.pipelines.interference import InterferenceSetup, instruction_split, measure
from analyses.pipelines.lens import run_languages
from analyses.stats.interference import summarise_cosines
from analyses.stats.latent import latent_column, layer_curves
from probes.backend import load
from probes.backend.store import ResultsStore, write_text_atomic
from probes.inputs.instruction_data import INSTRUCTIONS


@dataclass
class Fig3Results:
    curves: pd.DataFrame  # layer_curves of the lens table, with a ``model`` column
    interference: pd.DataFrame  # summarise_cosines() of the interference table, with a ``model`` column
    summary: pd.DataFrame  # one row per model
    logs: pd.DataFrame  # training logs, with a ``run`` column


def run_fig3(
    out: str | Path,
    *,
    base: str = "gemma-3-270m",
    data: str | Path = INSTRUCTIONS,
    target: str = "sw",
    pivot: str = "en",
    config: FinetuneConfig | None = None,
    k: int = 4,
    batch_size: int = 4,
    max_length: int = 128,
    params: str = "blocks",
    limit: int | None = None,
    store: ResultsStore | None = None,
    progress: bool = True,
) -> Fig3Results:
    """Train ``plain`` and ``pivoted`` models under ``out`` and measure all three models (the
    interference on ``params``, default the blocks: the per-layer curves do not need the
    embedding's gradient, the largest tensor of a big-vocabulary model; the lens on the first
    ``limit`` target prompts, default all); writes tables and figures to ``out`` and returns them."""
    out = Path(out)
    config = config or FinetuneConfig()
    store = store or ResultsStore(out / "store")
    examples = examples_from_instructions(instruction_split(data, "train"), target, pivot)
    models = {"base": base}
    logs = []
    for objective in ("plain", "pivoted"):
        result = finetune(base, examples, out / objective, replace(config, objective=objective), progress=progress)
        models[f"after {objective}"] = str(result.model_dir)
        logs.append(result.log.assign(run=objective))
    curves, summaries, rows = [], [], []
    for label, model in models.items():
        backend = load(model)
        lens = run_languages(backend, [target], latent=pivot, store=store, limit=limit, progress=progress)
        curves.append(layer_curves(lens).assign(model=label))
        setup = InterferenceSetup(
            pivot, target, split="held_out", k=k, batch_size=batch_size, params=params, max_length=max_length
        )
        table = measure(backend, setup, data, store=store, progress=progress)
        summary = summarise_cosines(table)
        summaries.append(summary.assign(model=label))
        layer = config.pivot.at(backend.n_layers)
        at_n = lens[lens["layer"] == layer]
        last = summary[summary["layer"] == backend.n_layers - 1]
        rows.append(
            {
                "model": label,
                "pivot_layer": layer,
                f"mean_p_{pivot}_at_n": float(at_n[latent_column(lens)].mean()),
                "mean_p_target_at_n": float(at_n["p_target"].mean()),
                "mean_p_target_output": float(lens[lens["layer"] == backend.n_layers - 1]["p_target"].mean()),
                "last_layer_cosine": float(last["mean"].iloc[0]),
                "last_layer_ci_low": float(last["ci_low"].iloc[0]),
                "last_layer_ci_high": float(last["ci_high"].iloc[0]),
                "held_out_loss_target": float(table.drop_duplicates("batch")["loss_b"].mean()),
                "held_out_loss_pivot": float(table.drop_duplicates("batch")["loss_a"].mean()),
            }
        )
        del backend
    results = Fig3Results(
        pd.concat(curves, ignore_index=True),
        pd.concat(summaries, ignore_index=True),
        pd.DataFrame(rows),
        pd.concat(logs, ignore_index=True),
    )
    for name, table in {
        "curves": results.curves,
        "interference_summary": results.interference,
        "summary": results.summary,
        "training_logs": results.logs,
    }.items():
        write_text_atomic(table.to_csv(index=False), out / f"{name}.csv")
    write_figures(out, model=Path(base).name)
    return results


def write_figures(out: Path, *, model: str) -> list[Path]:
    """PROM Fig. 3's figures in ``out``, drawn from the tables :func:`run_fig3` wrote there: the
    pivot and target probabilities per layer, the gradient cosine with the pivoted objective's
    read-out block marked, and the training loss; ``model`` names the base model in the titles.
    HTML with plotly.js beside it."""
    curves, interference = pd.read_csv(out / "curves.csv"), pd.read_csv(out / "interference_summary.csv")
    pivot, target = interference["lang_a"].iloc[0], interference["lang_b"].iloc[0]
    figures = {
        "fig3_pivot_probability": pivot_probability_figure(
            curves,
            lang=target,
            title=f"PROM Fig. 3 ({model}): P({pivot}) and P({target}) per layer, before and after fine-tuning (95% CI)",
        ),
        "fig3_interference": cosine_figure(
            interference,
            pivot_layer=int(pd.read_csv(out / "summary.csv")["pivot_layer"].iloc[0]),
            title=f"{model}: gradient cosine {pivot} vs {target} on held-out instructions, before and after (95% CI)",
        ),
        "training_loss": loss_figure(
            pd.read_csv(out / "training_logs.csv"), title=f"{model}: training loss, plain (t+e) vs pivoted"
        ),
    }
    return [path for name, fig in figures.items() for path in save_figure(fig, out / name)]
