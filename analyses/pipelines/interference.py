"""The interference job, shared by the CLI, the notebook and PROM's Fig. 2 and Fig. 3 runs:
batch pairs from the parallel instruction set -> the interference probe (through the results
store, resumable) -> per-layer means with 95% confidence intervals over batch pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from analyses.interventions.pivoted_loss import PivotedObjective
from probes.backend import Backend
from probes.backend.errors import InputError
from probes.backend.store import ResultsStore, provenance
from probes.inputs.instruction_data import INSTRUCTIONS, Template, load_instructions, split_held_out
from probes.interference import AT_OUTPUT, ParamSubset, Readout, instruction_pairs, run_interference

SPLITS: tuple[str, ...] = ("all", "train", "held_out")


def instruction_split(data: str | Path, split: str = "all") -> pd.DataFrame:
    """The instruction table, or its training part, or its held-out ids."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    table = load_instructions(data)
    if split == "all":
        return table
    train, held_out = split_held_out(table)
    return train if split == "train" else held_out


def measure(
    backend: Backend,
    data: str | Path = INSTRUCTIONS,
    lang_a: str = "en",
    lang_b: str = "sw",
    *,
    objective: str = "plain",
    readout_a: Readout = AT_OUTPUT,
    readout_b: Readout = AT_OUTPUT,
    split: str = "all",
    k: int = 8,
    batch_size: int = 8,
    pairing: str = "independent",
    seed: int = 0,
    params: ParamSubset = "all",
    layers: Sequence[int] | None = None,
    reduction: str = "token_mean",
    fp32: bool = True,
    aggregation: str = "concat",
    template: Template = "auto",
    max_length: int | None = 256,
    store: ResultsStore | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The interference table of ``k`` batch pairs (``lang_a``, ``lang_b``) of the instruction
    file ``data``, stored as one resumable run (see :mod:`probes.interference` for the options)."""
    table = instruction_split(data, split)
    pairs = instruction_pairs(
        backend,
        table,
        lang_a,
        lang_b,
        k=k,
        batch_size=batch_size,
        pairing=pairing,
        seed=seed,
        template=template,
        max_length=max_length,
    )
    settings = {
        "lang_a": lang_a,
        "lang_b": lang_b,
        "objective": objective,
        "readout_a": asdict(readout_a),
        "readout_b": asdict(readout_b),
        "split": split,
        "k": k,
        "batch_size": batch_size,
        "pairing": pairing,
        "params": params if isinstance(params, str) else list(params),
        "layers": None if layers is None else list(layers),
        "reduction": reduction,
        "fp32": fp32,
        "aggregation": aggregation,
        "template": template,
        "max_length": max_length,
    }
    run = (store or ResultsStore()).run(provenance("interference", settings, backend.describe(), [data], seed=seed))
    if run.finished:
        return run.load()
    return run_interference(
        backend,
        pairs,
        objective=objective,
        readout_a=readout_a,
        readout_b=readout_b,
        params=params,
        layers=layers,
        reduction=reduction,
        fp32=fp32,
        aggregation=aggregation,
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
    **options,
) -> pd.DataFrame:
    """PROM Fig. 2: gradient cosine per layer under three settings, as one interference table.

    * target only (``lang_a = lang_b = target``, plain): two target batches, the baseline;
    * target + English (``lang_a = pivot``, plain): both losses at the output (xLLaMA2(t+e));
    * pivoted (``lang_a = pivot``, ``objective = pivoted``): the pivot batch's loss is
      ``lam · L_{n,e}`` (read out at block n with label smoothing alpha), the target's ``L_{N,t}``.

    The batch ids depend on the seed only: batch B (target) is the same in all three settings,
    and batch A holds the same ids in the target language (setting 1) and in English (2, 3), so
    the settings differ only in the language and the read-out of batch A. ``options`` go to
    :func:`analyses.pipelines.interference.measure` (``k``, ``batch_size``, ``params``, ``store``, ...);
    the pairing is always independent (two different batches, as in training)."""
    if options.get("pairing", "independent") != "independent":
        raise ValueError("Fig. 2 compares two different batches; pairing must be 'independent'")
    options["pairing"] = "independent"
    read_pivot, read_target = objective.readouts(backend.n_layers)
    return pd.concat(
        [
            measure(backend, data, target, target, objective="plain", **options),
            measure(backend, data, pivot, target, objective="plain", **options),
            measure(
                backend,
                data,
                pivot,
                target,
                objective="pivoted",
                readout_a=read_pivot,
                readout_b=read_target,
                **options,
            ),
        ],
        ignore_index=True,
    )
