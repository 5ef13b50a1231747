"""The interference job, shared by the CLI, the notebook and PROM's Fig. 2 and Fig. 3 runs:
batch pairs from the parallel instruction set -> the interference probe (through the results
store, resumable) -> per-layer means with 95% confidence intervals over batch pairs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from probes.backend import Backend
from probes.backend.store import ResultsStore, provenance
from probes.inputs.instruction_data import INSTRUCTIONS, Template, load_instructions, split_held_out
from probes.interference import AT_OUTPUT, ParamSubset, Readout, instruction_pairs, run_interference

SPLITS: tuple[str, ...] = ("all", "train", "held_out")


def instruction_split(data: str | Path, split: str = "all") -> pd.DataFrame:
    """The instruction table, or its training part, or its held-out ids."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
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
    pairs = instruction_pairs(backend, table, lang_a, lang_b, k=k, batch_size=batch_size, pairing=pairing, seed=seed,
                              template=template, max_length=max_length)
    settings = {
        "lang_a": lang_a, "lang_b": lang_b, "objective": objective, "readout_a": asdict(readout_a),
        "readout_b": asdict(readout_b), "split": split, "k": k, "batch_size": batch_size, "pairing": pairing,
        "params": params if isinstance(params, str) else list(params), "layers": None if layers is None else list(layers),
        "reduction": reduction, "fp32": fp32, "aggregation": aggregation, "template": template, "max_length": max_length,
    }
    run = (store or ResultsStore()).run(provenance("interference", settings, backend.describe(), [data], seed=seed))
    if run.finished:
        return run.load()
    return run_interference(backend, pairs, objective=objective, readout_a=readout_a, readout_b=readout_b, params=params,
                            layers=layers, reduction=reduction, fp32=fp32, aggregation=aggregation, run=run,
                            progress=progress)


def mean_ci(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over batch pairs (few pairs: t, not 1.96)."""
    x = values.to_numpy(dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(scipy_stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def summarize(
    table: pd.DataFrame, scope: str = "layer", by: Sequence[str] = ("lang_a", "lang_b", "objective")
) -> pd.DataFrame:
    """Per group, layer and module of ``scope``: ``mean``, ``ci_low``, ``ci_high`` (95%) of the
    cosine over batch pairs, and ``n`` pairs."""
    data = table[table["scope"] == scope]
    if data.empty:
        raise ValueError(f"no rows of scope {scope!r}; the table has {sorted(table['scope'].unique())}")
    keys = [*by, "layer", "module"]
    rows = []
    for key, group in data.groupby(keys, sort=True, dropna=False):
        mean, low, high = mean_ci(group["cosine"])
        rows.append({**dict(zip(keys, key)), "mean": mean, "ci_low": low, "ci_high": high, "n": len(group)})
    out = pd.DataFrame(rows)
    out["layer"] = out["layer"].astype("Int64")
    return out


def last_layer_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The last block's mean cosine and CI per group (PROM Fig. 2 reads the last layer)."""
    layers = summary[summary["layer"].notna()]
    last = int(np.max(layers["layer"]))
    return layers[layers["layer"] == last].reset_index(drop=True)
