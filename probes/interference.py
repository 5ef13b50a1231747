"""Gradient-cosine interference between two languages (PROM, Lee et al., Sec. 2.1 and Fig. 2,
after Wang et al. 2020; docs/methods/prom.md).

For a pair of batches ``(B_A, B_B)`` in languages A and B, ``g_A = ∇θ L(B_A)`` and
``g_B = ∇θ L(B_B)``; interference at a parameter group ``P`` is

    cos_P = <g_A|P, g_B|P> / (||g_A|P|| · ||g_B|P||)

(low or negative = the two languages pull the parameters apart). It is reported per parameter
tensor, per module of a block (q, k, v, o, gate, up, down, norms), per block (``module = all``,
the concatenation of the block's tensors), and for all requested parameters (``module = model``).

The choices PROM leaves open are parameters, with these defaults:

* ``reduction``: the loss is the mean over scored tokens (``token_mean``; labels mark the
  response tokens, see :mod:`probes.inputs.instruction_data`), or ``sequence_mean``. A mean or a sum
  over the batch only rescales a gradient, which no cosine sees.
* ``params``: ``all`` trainable tensors (embedding and final norm included), ``blocks``, or
  ``matrices`` (the blocks' weight matrices), or explicit Hugging Face names; ``layers``
  restricts to some blocks (then the backward pass stops there).
* ``fp32``: dot products and norms are taken in float32 per tensor and summed in float64;
  ``False`` keeps the model's dtype (bf16 models then round every partial sum).
* ``aggregation``: ``concat`` (cosine of the concatenated gradients, the default) or
  ``mean`` (mean of the member tensors' cosines); both follow from the stored per-tensor
  ``dot`` and norms.
* ``readout_a``/``readout_b``: where each side's loss is read (PROM's pivoted objective reads
  the English side at block ``n`` with label smoothing ``alpha``, weight ``lambda``).

Where one side's gradient is exactly zero (a block above the pivoted read-out receives no
gradient from it) the cosine is 0: the batches cannot conflict there; ``norm_a``/``norm_b``
show it. Memory: side A's gradient is kept (it is the only full copy), side B's arrives one
tensor at a time and is reduced and freed at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from probes.backend import Backend, Encoded
from probes.backend.errors import InputError
from probes.backend.gradients import REDUCTIONS
from probes.backend.resume import collect
from probes.backend.scopes import ParameterScope
from probes.backend.store import Run
from probes.inputs.instruction_data import Template, collate, pairs_for, parallel_ids, tokenize_pairs
from probes.registry import register_probe

INTERFERENCE_COLUMNS = {
    "lang_a": "language of batch A (under the pivoted objective: the pivot language, read out at layer n)",
    "lang_b": "language of batch B (read out at the model's output)",
    "objective": "plain (both losses at the output) or pivoted (A read out at block n with label smoothing)",
    "batch": "index of the batch pair (0..K-1)",
    "layer": "0-based block index; <NA> for parameters outside the blocks (embedding, final norm, head, model)",
    "module": "q, k, v, o, gate, up, down, norms (other block tensors keep their path); all = the whole block; "
    "embed, final_norm, head outside the blocks; model = every requested parameter",
    "scope": "tensor (one parameter tensor), module, layer (module = all) or model",
    "param": "Hugging Face name of the tensor (scope tensor); empty for groups",
    "cosine": "cosine between the two batches' loss gradients (groups: of the concatenation, or the mean of "
    "the member tensors' cosines with aggregation=mean); 0 where a gradient is zero",
    "dot": "<g_A, g_B> over the group (weights lambda included)",
    "norm_a": "||g_A|| over the group",
    "norm_b": "||g_B|| over the group",
    "n_params": "number of scalar parameters in the group",
    "loss_a": "loss of batch A (unweighted)",
    "loss_b": "loss of batch B",
    "tokens_a": "scored tokens in batch A",
    "tokens_b": "scored tokens in batch B",
    "item": "run key of the pair (lang_a|lang_b|objective|batch)",
}

ParamSubset = str | Sequence[str]
SUBSETS: tuple[str, ...] = ("all", "blocks", "matrices")
AGGREGATIONS: tuple[str, ...] = ("concat", "mean")
PAIRINGS: tuple[str, ...] = ("independent", "parallel")


@dataclass(frozen=True)
class Readout:
    """Where one side's loss is read: after block ``layer`` (``None``: the model's output) through
    the model's final norm and head, with ``label_smoothing``, scaled by ``weight``."""

    layer: int | None = None
    label_smoothing: float = 0.0
    weight: float = 1.0


AT_OUTPUT = Readout()  # the plain loss: the model's output, no smoothing, weight 1


@dataclass(frozen=True)
class Batch:
    """One batch of one language: left-padded inputs and labels (``-100`` = not scored)."""

    lang: str
    enc: Encoded
    labels: torch.Tensor
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchPair:
    index: int
    a: Batch
    b: Batch


def select_params(
    backend: Backend, params: ParamSubset = "all", layers: Sequence[int] | None = None
) -> dict[str, ParameterScope]:
    """The requested trainable tensors and their scopes (``Backend.parameter_scopes()``), in
    parameter order."""
    named = backend.trainable_parameters()
    scopes = {n: where for n, where in backend.parameter_scopes().items() if n in named}
    if isinstance(params, str):
        if params not in SUBSETS:
            raise InputError(f"unknown parameter subset {params!r}; use one of {', '.join(SUBSETS)} or a list of names")
        chosen = [
            n
            for n, where in scopes.items()
            if params == "all" or (where.layer is not None and (params == "blocks" or where.ndim >= 2))
        ]
    else:
        unknown = [n for n in params if n not in named]
        if unknown:
            raise KeyError(f"unknown parameters {unknown[:3]}; use Hugging Face names such as {next(iter(named))!r}")
        chosen = list(params)
    if layers is not None:
        wanted = set(backend.check_layers(layers))
        chosen = [n for n in chosen if scopes[n].layer in wanted]
    if not chosen:
        raise ValueError(f"no parameter left for params={params!r}, layers={layers!r}")
    return {n: scopes[n] for n in chosen}


def _cosine(dot: float, norm_a: float, norm_b: float) -> float:
    return dot / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else 0.0


def _tensor_stats(
    backend: Backend,
    pair: BatchPair,
    chosen: dict[str, ParameterScope],
    readout_a: Readout,
    readout_b: Readout,
    reduction: str,
    fp32: bool,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per requested tensor: dot product and squared norms of the two (weighted) gradients."""
    names = list(chosen)
    first = backend.grad_stream(
        pair.a.enc,
        pair.a.labels,
        names,
        layer=readout_a.layer,
        label_smoothing=readout_a.label_smoothing,
        reduction=reduction,
    )
    kept = dict(iter(first))  # the streamed tensors are the .grad buffers themselves: no copy
    second = backend.grad_stream(
        pair.b.enc,
        pair.b.labels,
        names,
        layer=readout_b.layer,
        label_smoothing=readout_b.label_smoothing,
        reduction=reduction,
    )
    rows = []
    for name, grad in second:
        grad_a, grad_b = kept.pop(name), grad
        if fp32:
            grad_a, grad_b = grad_a.float(), grad_b.float()
        flat_a, flat_b = grad_a.reshape(-1), grad_b.reshape(-1)
        rows.append(
            {
                "param": name,
                "dot": float(torch.dot(flat_a, flat_b)) * readout_a.weight * readout_b.weight,
                "sq_a": float(torch.dot(flat_a, flat_a)) * readout_a.weight**2,
                "sq_b": float(torch.dot(flat_b, flat_b)) * readout_b.weight**2,
                "n_params": flat_a.numel(),
            }
        )
        del grad_a, grad_b, flat_a, flat_b
    stats = pd.DataFrame(rows)
    stats["layer"] = pd.array([chosen[n].layer for n in stats["param"]], dtype="Int64")
    stats["module"] = [chosen[n].group for n in stats["param"]]
    meta = {"loss_a": first.loss, "loss_b": second.loss, "tokens_a": first.n_tokens, "tokens_b": second.n_tokens}
    return stats, meta


def _group_rows(stats: pd.DataFrame, scope: str, aggregation: str) -> pd.DataFrame:
    """Sum dots and squared norms over a group; cosine of the concatenation or mean of cosines."""
    keys = {"module": ["layer", "module"], "layer": ["layer"], "model": []}[scope]
    # modules and layers are groups inside the blocks; tensors outside them keep their tensor rows
    data = stats if scope == "model" else stats[stats["layer"].notna()]
    grouped = data.groupby(keys, sort=False, dropna=False) if keys else [((), data)]
    rows = []
    for group_key, group in grouped:
        key = group_key if isinstance(group_key, tuple) else (group_key,)
        dot, sq_a, sq_b = group["dot"].sum(), group["sq_a"].sum(), group["sq_b"].sum()
        if aggregation == "concat":
            cosine = _cosine(dot, math.sqrt(sq_a), math.sqrt(sq_b))
        else:
            cosine = float(
                np.mean(
                    [
                        _cosine(d, math.sqrt(a), math.sqrt(b))
                        for d, a, b in zip(group["dot"], group["sq_a"], group["sq_b"])
                    ]
                )
            )
        row: dict[str, object] = dict(zip(keys, key))
        row.update({"dot": dot, "sq_a": sq_a, "sq_b": sq_b, "n_params": int(group["n_params"].sum()), "cosine": cosine})
        rows.append(row)
    out = pd.DataFrame(rows)
    if scope == "layer":
        out["module"] = "all"
    if scope == "model":
        out["layer"], out["module"] = pd.NA, "model"
    out["scope"], out["param"] = scope, ""
    return out


def pair_rows(stats: pd.DataFrame, aggregation: str = "concat") -> pd.DataFrame:
    """All rows of one pair from its per-tensor statistics (``param, layer, module, dot, sq_a,
    sq_b, n_params``)."""
    if aggregation not in AGGREGATIONS:
        raise InputError(f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
    tensors = stats.copy()
    tensors["cosine"] = [
        _cosine(d, math.sqrt(a), math.sqrt(b)) for d, a, b in zip(tensors["dot"], tensors["sq_a"], tensors["sq_b"])
    ]
    tensors["scope"] = "tensor"
    frames = [tensors] + [_group_rows(stats, scope, aggregation) for scope in ("module", "layer", "model")]
    rows = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    rows["norm_a"], rows["norm_b"] = np.sqrt(rows.pop("sq_a")), np.sqrt(rows.pop("sq_b"))
    rows["layer"] = rows["layer"].astype("Int64")
    return rows


@register_probe(
    "interference",
    paper="PROM (Lee et al.) Sec. 2.1, Fig. 2; Wang et al. 2020",
    columns=INTERFERENCE_COLUMNS,
)
def run_interference(
    backend: Backend,
    pairs: Sequence[BatchPair],
    *,
    objective: str = "plain",
    readout_a: Readout = AT_OUTPUT,
    readout_b: Readout = AT_OUTPUT,
    params: ParamSubset = "all",
    layers: Sequence[int] | None = None,
    reduction: str = "token_mean",
    fp32: bool = True,
    aggregation: str = "concat",
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Gradient cosines for each batch pair (columns in ``INTERFERENCE_COLUMNS``). ``objective``
    labels the rows; ``readout_a``/``readout_b`` say where each side's loss is read. With ``run``,
    each finished pair is stored and skipped on a re-run."""
    if reduction not in REDUCTIONS:
        raise InputError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
    if aggregation not in AGGREGATIONS:
        raise InputError(f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
    chosen = select_params(backend, params, layers)

    def compute(batch: list[BatchPair]) -> pd.DataFrame:
        (pair,) = batch
        stats, meta = _tensor_stats(backend, pair, chosen, readout_a, readout_b, reduction, fp32)
        rows = pair_rows(stats, aggregation)
        rows = rows.assign(
            lang_a=pair.a.lang,
            lang_b=pair.b.lang,
            objective=objective,
            batch=pair.index,
            **meta,
            item=_item(pair, objective),
        )
        return rows[list(INTERFERENCE_COLUMNS)]

    return collect(
        pairs,
        compute,
        key=lambda pair: _item(pair, objective),
        columns=list(INTERFERENCE_COLUMNS),
        run=run,
        desc=f"interference {backend.model_name}",
        unit="pair",
        progress=progress,
    )


def _item(pair: BatchPair, objective: str) -> str:
    return f"{pair.a.lang}|{pair.b.lang}|{objective}|{pair.index}"


def sample_ids(
    ids: Sequence[str], k: int, batch_size: int, pairing: str = "independent", seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """Ids of ``k`` batch pairs. ``independent``: the two batches of a pair hold different ids
    (two random batches, as in training: PROM's reading); ``parallel``: the same ids (each
    batch B is the translation of batch A, so only the language differs). The draw depends on
    ``seed`` only, not on the languages, so pairs of different language pairs share ids."""
    if pairing not in PAIRINGS:
        raise InputError(f"unknown pairing {pairing!r}; use one of {', '.join(PAIRINGS)}")
    need = batch_size * (2 if pairing == "independent" else 1)
    if need > len(ids):
        raise ValueError(f"{len(ids)} ids cannot fill a {pairing} pair of batches of {batch_size}; lower batch_size")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        drawn = [ids[i] for i in rng.choice(len(ids), size=need, replace=False)]
        out.append((drawn[:batch_size], drawn[batch_size:] if pairing == "independent" else drawn))
    return out


def instruction_pairs(
    backend: Backend,
    table: pd.DataFrame,
    lang_a: str,
    lang_b: str,
    *,
    k: int = 8,
    batch_size: int = 8,
    pairing: str = "independent",
    seed: int = 0,
    template: Template = "auto",
    max_length: int | None = 256,
    loss_on_prompt: bool = False,
) -> list[BatchPair]:
    """``k`` batch pairs of the parallel instruction ``table`` (see :mod:`probes.inputs.instruction_data`):
    batch A in ``lang_a``, batch B in ``lang_b``, loss on the response tokens."""
    ids = parallel_ids(table, [lang_a, lang_b])
    options = {"template": template, "max_length": max_length, "loss_on_prompt": loss_on_prompt}

    def batch(lang: str, chosen: list[str]) -> Batch:
        enc, labels = collate(
            tokenize_pairs(backend.tokenizer, pairs_for(table, lang, chosen), **options), backend.pad_id
        )
        return Batch(lang, enc.to(backend.device), labels.to(backend.device), tuple(chosen))

    return [
        BatchPair(i, batch(lang_a, ids_a), batch(lang_b, ids_b))
        for i, (ids_a, ids_b) in enumerate(sample_ids(ids, k, batch_size, pairing, seed))
    ]
