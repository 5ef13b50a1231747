"""The interference job, shared by the CLI, the notebook and PROM's Fig. 2 and Fig. 3 runs:
batch pairs from the parallel instruction set -> the interference probe (through the results
store, resumable) -> per-layer means with 95% confidence intervals over batch pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from analyses.figures import save_figure
from analyses.figures.interference import cosine_figure, fig2_figure, module_figure
from analyses.interventions.pivoted_loss import PivotedObjective
from probes.backend import Backend
from probes.backend.errors import InputError
from probes.backend.store import ResultsStore, provenance
from probes.inputs.instruction_data import INSTRUCTIONS, Template, load_instructions, split_held_out
from probes.interference import AT_OUTPUT, ParamSubset, Readout, instruction_pairs, run_interference

SPLITS: tuple[str, ...] = ("all", "train", "held_out")
ALL_PARAMS = "all"  # every trainable tensor: the default subset (a str, as the command line takes it)


def instruction_split(data: str | Path, split: str = "all") -> pd.DataFrame:
    """The instruction table, or its training part, or its held-out ids."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    table = load_instructions(data)
    if split == "all":
        return table
    train, held_out = split_held_out(table)
    return train if split == "train" else held_out


@dataclass(frozen=True)
class InterferenceSetup:
    """What one interference table measures: ``k`` batch pairs of ``batch_size`` examples in
    ``lang_a`` and ``lang_b`` drawn from one ``split`` of the instruction file, and how the
    gradients are compared (see :mod:`probes.interference` for each option). Every field is part
    of the run key (:meth:`settings`, with ``seed`` given to the provenance apart)."""

    lang_a: str = "en"
    lang_b: str = "sw"
    objective: str = "plain"
    readout_a: Readout = AT_OUTPUT
    readout_b: Readout = AT_OUTPUT
    split: str = "all"
    k: int = 8
    batch_size: int = 8
    pairing: str = "independent"
    seed: int = 0
    params: ParamSubset = ALL_PARAMS
    layers: Sequence[int] | None = None
    reduction: str = "token_mean"
    fp32: bool = True
    aggregation: str = "concat"
    template: Template = "auto"
    max_length: int | None = 256

    def settings(self) -> dict[str, object]:
        """The run key's parameters (JSON values; the seed goes to the provenance apart)."""
        return {
            "lang_a": self.lang_a,
            "lang_b": self.lang_b,
            "objective": self.objective,
            "readout_a": asdict(self.readout_a),
            "readout_b": asdict(self.readout_b),
            "split": self.split,
            "k": self.k,
            "batch_size": self.batch_size,
            "pairing": self.pairing,
            "params": self.params if isinstance(self.params, str) else list(self.params),
            "layers": None if self.layers is None else list(self.layers),
            "reduction": self.reduction,
            "fp32": self.fp32,
            "aggregation": self.aggregation,
            "template": self.template,
            "max_length": self.max_length,
        }


def measure(
    backend: Backend,
    setup: InterferenceSetup = InterferenceSetup(),
    data: str | Path = INSTRUCTIONS,
    *,
    store: ResultsStore | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The interference table of ``setup`` on the instruction file ``data``, stored as one
    resumable run."""
    run = (store or ResultsStore()).run(
        provenance("interference", setup.settings(), backend.describe(), [data], seed=setup.seed)
    )
    if run.finished:
        return run.load()
    pairs = instruction_pairs(
        backend,
        instruction_split(data, setup.split),
        setup.lang_a,
        setup.lang_b,
        k=setup.k,
        batch_size=setup.batch_size,
        pairing=setup.pairing,
        seed=setup.seed,
        template=setup.template,
        max_length=setup.max_length,
    )
    return run_interference(
        backend,
        pairs,
        objective=setup.objective,
        readout_a=setup.readout_a,
        readout_b=setup.readout_b,
        params=setup.params,
        layers=setup.layers,
        reduction=setup.reduction,
        fp32=setup.fp32,
        aggregation=setup.aggregation,
        run=run,
        progress=progress,
    )


def fig2_comparison(
    backend: Backend,
    data: str | Path,
    target: str,
    pivot: str = "en",
    *,
    objective: PivotedObjective = PivotedObjective(),
    setup: InterferenceSetup = InterferenceSetup(),
    store: ResultsStore | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """PROM Fig. 2: gradient cosine per layer under three settings, as one interference table.

    * target only (``lang_a = lang_b = target``, plain): two target batches, the baseline;
    * target + English (``lang_a = pivot``, plain): both losses at the output (xLLaMA2(t+e));
    * pivoted (``lang_a = pivot``, ``objective = pivoted``): the pivot batch's loss is
      ``lam · L_{n,e}`` (read out at block n with label smoothing alpha), the target's ``L_{N,t}``.

    The batch ids depend on the seed only: batch B (target) is the same in all three settings,
    and batch A holds the same ids in the target language (setting 1) and in English (2, 3), so
    the settings differ only in the language and the read-out of batch A. ``setup`` gives the
    other options (``k``, ``batch_size``, ``params``, ...; its languages, objective and read-outs
    are set here); the pairing must be independent (two different batches, as in training)."""
    if setup.pairing != "independent":
        raise ValueError("Fig. 2 compares two different batches; pairing must be 'independent'")
    read_pivot, read_target = objective.readouts(backend.n_layers)
    plain = replace(setup, lang_b=target, objective="plain", readout_a=AT_OUTPUT, readout_b=AT_OUTPUT)
    settings = [
        replace(plain, lang_a=target),
        replace(plain, lang_a=pivot),
        replace(plain, lang_a=pivot, objective="pivoted", readout_a=read_pivot, readout_b=read_target),
    ]
    return pd.concat(
        [measure(backend, each, data, store=store, progress=progress) for each in settings], ignore_index=True
    )


def write_figures(out: Path, *, model: str, pivot_layer: int | None = None) -> list[Path]:
    """The figures of the interference folder ``out``, drawn from the summaries written there
    (``summary_layer.csv``, ``summary_module.csv``): PROM's Fig. 2 per target when the summary has
    its settings (``pivotlens interference-fig2``), else the cosine per layer of every language pair
    and the cosine per module of each. ``model`` names the model in the titles; ``pivot_layer``
    (the pivoted objective's read-out block) is marked when given. HTML with plotly.js beside it."""
    summary = pd.read_csv(out / "summary_layer.csv")
    batch_pairs = int(summary["n"].max())
    figures = {}
    if "setting" in summary.columns:
        for target, rows in summary.groupby("target"):
            figures[f"fig2_{target}"] = fig2_figure(
                rows,
                pivot_layer=pivot_layer,
                title=f"{model}: PROM Fig. 2, target {target} ({batch_pairs} batch pairs, 95% CI)",
            )
    else:
        objective = ", ".join(summary["objective"].unique())
        figures["cosine_layers"] = cosine_figure(
            summary,
            pivot_layer=pivot_layer,
            title=f"{model}: gradient cosine per layer, {objective} objective ({batch_pairs} batch pairs, 95% CI)",
        )
        modules = pd.read_csv(out / "summary_module.csv")
        language_pairs = zip(
            summary["lang_a"].astype(str), summary["lang_b"].astype(str), summary["objective"].astype(str)
        )
        for lang_a, lang_b, objective in dict.fromkeys(language_pairs):
            figures[f"modules_{lang_a}_{lang_b}"] = module_figure(
                modules,
                lang_a,
                lang_b,
                objective,
                title=f"{model}: gradient cosine per module, {lang_a} vs {lang_b} ({objective})",
            )
    return [path for name, fig in figures.items() for path in save_figure(fig, out / name)]
