"""Report section: from which layer is the answer already right, and what early exit would save
(AdaInfer, Fan et al. 2024, Fig. 1 and Tables 2-3; docs/methods/early-exit.md)."""

from __future__ import annotations

import pandas as pd

from analyses.figures.exit import accuracy_by_layer_figure
from analyses.report.sections import ReportContext, SectionResult, Verdict, register_section
from analyses.stats.early_exit import accuracy_by_layer, static_exit_curve
from analyses.stats.flops import Uncounted, flops_model
from probes.backend.lenses import load_lens
from probes.exit_accuracy import exit_accuracy, exit_run
from probes.inputs.tasks import TASKS, load_task


def first_right_layer(layers: pd.DataFrame) -> int:
    """The first layer from which on accuracy among the options stays at or above the lower 95%
    bound of the last layer's (the model's own answer): from there the answer is already right."""
    ordered = layers.sort_values("layer")
    bound = float(ordered["accuracy_options_low"].iloc[-1])
    below = ordered.loc[ordered["accuracy_options"] < bound, "layer"]
    return int(below.max()) + 1 if len(below) else int(ordered["layer"].iloc[0])


def majority_share(items: pd.DataFrame) -> float:
    """Accuracy of always answering the most frequent gold label (the baseline to beat)."""
    gold = items.drop_duplicates("item")["gold"]
    return float(gold.value_counts(normalize=True).max())


def cheapest_safe_exit(static: pd.DataFrame) -> pd.Series:
    """The static exit layer with the fewest FLOPs whose 95% interval still covers the full
    model's accuracy (no significant loss); the last layer when none does."""
    ordered = static.sort_values("layer")
    full = float(ordered["accuracy"].iloc[-1])
    safe = ordered[ordered["accuracy_high"] >= full]
    return safe.iloc[0]


@register_section("exit", order=20)
def exit_section(ctx: ReportContext) -> SectionResult:
    result = SectionResult("Layer-wise exit accuracy and early exit (AdaInfer)")
    items: list[pd.DataFrame] = []
    for task in TASKS:
        data = load_task(task)
        if ctx.lang not in set(data.frame["lang"]):
            result.notes.append(
                f"no {task} items in {ctx.lang} (data/tasks/{task}.csv has "
                f"{', '.join(sorted(set(data.frame['lang'])))}); add rows to include it"
            )
            continue
        n = 30 if ctx.quick else 100
        lens = load_lens(ctx.backend, ctx.lenses[0])
        run = exit_run(ctx.store, ctx.backend, data, ctx.lang, n=n, lens=lens)
        items.append(
            exit_accuracy(
                ctx.backend,
                task,
                ctx.lang,
                n=n,
                data=data,
                batch_size=ctx.batch_size,
                run=run,
                progress=False,
                lens=lens,
            )
        )
    if not items:
        return result
    table = pd.concat(items, ignore_index=True)
    layers = accuracy_by_layer(table)
    shape = flops_model(ctx.backend.config)
    static = static_exit_curve(table, shape, "options")
    last = ctx.backend.n_layers - 1
    for task, rows in layers.groupby("task", sort=True):
        final = rows[rows["layer"] == last].iloc[0]
        baseline = majority_share(table[table["task"] == task])
        if final["accuracy_options_low"] <= baseline:
            result.verdicts.append(
                Verdict(
                    f"{task}: from which layer is the answer already right?",
                    "not even at the output: the model is not above the majority baseline",
                    f"accuracy among the options at the output {final['accuracy_options']:.2f} vs {baseline:.2f} "
                    f"for always "
                    f"answering the most frequent label (n = {int(final['n'])}, 3-shot, one demonstration set)",
                    f"95% Wilson interval at the output [{final['accuracy_options_low']:.2f}, "
                    f"{final['accuracy_options_high']:.2f}] includes the baseline; no early-exit saving is meaningful",
                )
            )
            continue
        exit_row = cheapest_safe_exit(static[static["task"] == task])
        right_from, exit_layer = first_right_layer(rows), int(exit_row["layer"])
        result.verdicts.append(
            Verdict(
                f"{task}: from which layer is the answer already right?",
                f"layer {right_from} of {last}",
                f"accuracy among the options at the output {final['accuracy_options']:.2f} vs majority baseline "
                f"{baseline:.2f} (n = {int(final['n'])}, 3-shot, one demonstration set; logit lens restricted to "
                f"the answer tokens); right "
                f"= at "
                "or above the output's lower 95% bound at this layer and every later one",
                f"95% Wilson interval at the output [{final['accuracy_options_low']:.2f}, "
                f"{final['accuracy_options_high']:.2f}]",
            )
        )
        dip = (
            f"; the answer is not yet stable there (layer {right_from - 1} is below the output's lower 95% bound)"
            if exit_layer < right_from
            else ""
        )
        result.verdicts.append(
            Verdict(
                f"{task}: what would early exit save?",
                (
                    f"FLOPs not counted ({shape.reason}); static exit at layer {exit_layer}"
                    if isinstance(shape, Uncounted)
                    else f"{100 - exit_row['flops_ratio']:.0f}% of the FLOPs (static exit at layer {exit_layer})"
                ),
                f"accuracy there {exit_row['accuracy']:.2f} vs {final['accuracy_options']:.2f} at the output; FLOPs of "
                f"the real decoder shapes, lens head at the exit layer included (docs/methods/early-exit.md){dip}",
                "the cheapest layer whose 95% interval still covers the full model's accuracy",
            )
        )
    result.figures.append(accuracy_by_layer_figure(layers, "accuracy_options"))
    result.tables = {"exit_layers": layers, "exit_static": static}
    return result
