"""Weight-change maps: how much fine-tuning moved each (layer, matrix) of a model (Bandarkar et
al., ICLR 2025, Figure 2; docs/methods/layer-swapping.md).

For a base checkpoint ``W_base`` and a fine-tuned one ``W_tuned`` with ``ΔW = W_tuned − W_base``,
one value per (layer, module), ``module`` in ``q, k, v, o, gate, up, down``, under three
definitions (the paper does not give its own):

* ``rel_mean_abs`` (a): ``mean|ΔW| / mean|W_base|`` over the matrix's entries.
* ``rel_frobenius`` (b): ``‖ΔW‖_F / ‖W_base‖_F``.
* ``top_fraction`` (c): pool the ``|ΔW|`` entries of every mapped matrix of the model
  (all layers, all seven modules; not embeddings or norms), take the threshold ``τ`` = the
  ``k``-th largest with ``k = ceil(top_percent/100 · N)``; the value of a matrix is the number
  of its entries with ``|ΔW| ≥ τ`` (and ``> 0``) divided by its number of entries. It lies in
  [0, 1] and its size-weighted mean over the model is ``top_percent/100`` (slightly more with
  ties at ``τ``). ``τ`` is exact: a first pass bins the float32 bit patterns of ``|ΔW|`` (monotone
  for non-negative floats) into 2^15 bins, a second keeps only the entries of the bin holding
  ``τ``.

Architecture names are mapped onto the seven modules: ``q_proj .. down_proj`` (Llama, Gemma,
Mistral, Qwen, OLMo, ...), Meta's original ``wq, wk, wv, wo, w1 (gate), w3 (up), w2 (down)``,
and GPT-2's ``c_attn`` (split into q, k, v along its output axis), ``attn.c_proj`` (o),
``c_fc`` (up) and ``mlp.c_proj`` (down; GPT-2 has no gate). Other fused layouts (``qkv_proj``,
``gate_up_proj``, ``query_key_value``) are refused with an error naming the architecture.

Checkpoints are read tensor by tensor (:mod:`probes.backend.checkpoint`), so memory stays at a few
matrices whatever the model size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from probes.backend.checkpoint import Checkpoint, check_compatible, open_checkpoint
from probes.backend.errors import PivotlensError, UnsupportedArchitectureError
from probes.backend.scopes import PROJECTIONS

MODULES: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
METRICS: tuple[str, ...] = ("rel_mean_abs", "rel_frobenius", "top_fraction")
METRIC_LABELS = {
    "rel_mean_abs": "mean|ΔW| / mean|W_base|",
    "rel_frobenius": "‖ΔW‖_F / ‖W_base‖_F",
    "top_fraction": "share of the matrix's entries in the model's top {top_percent:g}% |ΔW|",
}
COLUMNS = {
    "layer": "0-based block index",
    "module": "q, k, v, o, gate, up or down",
    "metric": "rel_mean_abs, rel_frobenius or top_fraction (see the module docstring for the normalisation)",
    "value": "the metric's value for this matrix",
    "n_params": "number of entries of the matrix",
    "tensor": "the checkpoint's tensor name (GPT-2's c_attn appears as q, k and v)",
}

_MATRIX = re.compile(r"(?:^|\.)(?:layers|h)\.(\d+)\.(self_attn|attention|attn|mlp|feed_forward)\.(\w+)\.weight$")
_LEAVES = {
    **PROJECTIONS,
    "wq": "q",
    "wk": "k",
    "wv": "v",
    "wo": "o",
    "w1": "gate",
    "w3": "up",
    "w2": "down",
    "c_fc": "up",
}
_FUSED = ("qkv_proj", "gate_up_proj", "query_key_value", "Wqkv", "W_pack")
_BINS = 1 << 15  # sign bit is 0 for |ΔW|: the top 16 bits of a float32 take 2^15 values


@dataclass(frozen=True)
class Matrix:
    """One (layer, module) matrix: a tensor, or a third of GPT-2's fused ``c_attn`` (``part``)."""

    layer: int
    module: str
    tensor: str
    part: int | None = None

    def take(self, weight: torch.Tensor) -> torch.Tensor:
        return weight if self.part is None else weight.chunk(3, dim=1)[self.part]


def _unsupported(ckpt: Checkpoint, why: str) -> UnsupportedArchitectureError:
    return UnsupportedArchitectureError(
        f"weight-change maps do not support {ckpt.architecture} ({ckpt.name}): {why}; supported are q_proj..down_proj "
        "(Llama, Gemma, Mistral, Qwen, ...), Meta's wq..w3 and GPT-2's c_attn/c_proj/c_fc"
    )


def matrices(ckpt: Checkpoint) -> list[Matrix]:
    """The checkpoint's q, k, v, o, gate, up, down matrices, ordered by layer and module."""
    found: dict[tuple[int, str], Matrix] = {}
    for name in ckpt.shapes:
        match = _MATRIX.search(name)
        if match is None:
            if any(f".{fused}." in name for fused in _FUSED):
                raise _unsupported(ckpt, f"fused matrix {name}")
            continue
        layer, block, leaf = int(match.group(1)), match.group(2), match.group(3)
        if leaf in _FUSED:
            raise _unsupported(ckpt, f"fused matrix {name}")
        if leaf == "c_attn":
            new = [Matrix(layer, module, name, part) for part, module in enumerate(("q", "k", "v"))]
        elif leaf == "c_proj":
            new = [Matrix(layer, "o" if block == "attn" else "down", name)]
        elif leaf in _LEAVES:
            new = [Matrix(layer, _LEAVES[leaf], name)]
        else:
            continue
        for matrix in new:
            key = (matrix.layer, matrix.module)
            if key in found:
                raise _unsupported(ckpt, f"two {matrix.module} matrices in layer {layer} ({found[key].tensor}, {name})")
            found[key] = matrix
    if not found:
        raise _unsupported(ckpt, "no q/k/v/o/gate/up/down matrices found")
    return [found[key] for key in sorted(found, key=lambda k: (k[0], MODULES.index(k[1])))]


def _bits(abs_delta: torch.Tensor) -> torch.Tensor:
    """Bin of each non-negative float32: its top 16 bits (monotone in the value)."""
    return (abs_delta.contiguous().view(torch.int32) >> 16).reshape(-1).long()


def _deltas(base: Checkpoint, tuned: Checkpoint, mats: list[Matrix], desc: str, progress: bool):
    """Yield ``(matrix, W_base, |ΔW|)`` in float32, reading each tensor once."""
    with base.reader() as read_base, tuned.reader() as read_tuned:
        groups = [(tensor, list(group)) for tensor, group in groupby(mats, key=lambda m: m.tensor)]
        for tensor, group in tqdm(groups, desc=desc, disable=not progress):
            w_base = read_base(tensor).float()
            delta = (read_tuned(tensor).float() - w_base).abs_()
            for matrix in group:
                yield matrix, matrix.take(w_base), matrix.take(delta)


def _top_counts(
    base: Checkpoint, tuned: Checkpoint, mats: list[Matrix], hist: torch.Tensor, top_percent: float, progress: bool
) -> list[int]:
    """Per matrix, the number of its entries among the model's top ``top_percent``% ``|ΔW|``."""
    total = int(hist.sum())
    k = max(1, math.ceil(top_percent / 100 * total))
    from_top = hist.flip(0).cumsum(0)
    idx = int(torch.searchsorted(from_top, torch.tensor(k)))
    threshold_bin = _BINS - 1 - idx
    above = int(from_top[idx - 1]) if idx > 0 else 0
    counts, in_bin, owner = [], [], []
    for i, (_, _, delta) in enumerate(_deltas(base, tuned, mats, "top |ΔW| (pass 2)", progress)):
        bits = _bits(delta)
        counts.append(int((bits > threshold_bin).sum()))
        values = delta.reshape(-1)[bits == threshold_bin]
        in_bin.append(values)
        owner.append(torch.full((len(values),), i, dtype=torch.long))
    values, owners = torch.cat(in_bin), torch.cat(owner)
    tau = float(values.topk(k - above).values.min())
    selected = owners[(values >= tau) & (values > 0)]
    extra = torch.bincount(selected, minlength=len(mats))
    return [c + int(e) for c, e in zip(counts, extra)]


def weight_change(
    base: str | Path | Checkpoint,
    tuned: str | Path | Checkpoint,
    *,
    metrics: Sequence[str] = METRICS,
    top_percent: float = 1.0,
    progress: bool = True,
) -> pd.DataFrame:
    """Tidy table ``layer, module, metric, value, n_params, tensor`` (columns in ``COLUMNS``) of the
    change from ``base`` to ``tuned`` (any model the loader takes, read tensor by tensor)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise PivotlensError(f"unknown metric {unknown[0] if unknown else '(none)'}; use one of {', '.join(METRICS)}")
    if not 0 < top_percent <= 100:
        raise PivotlensError(f"top_percent must lie in (0, 100], got {top_percent}")
    base = base if isinstance(base, Checkpoint) else open_checkpoint(base)
    tuned = tuned if isinstance(tuned, Checkpoint) else open_checkpoint(tuned)
    check_compatible([base, tuned], "the base and tuned checkpoints", distinct=False)
    mats = matrices(base)
    want_top = "top_fraction" in metrics
    hist = torch.zeros(_BINS, dtype=torch.long)
    sums = []
    for _, w_base, delta in _deltas(base, tuned, mats, "weight change", progress):
        sums.append(
            (
                float(delta.double().sum()),
                float(w_base.double().abs().sum()),
                float(delta.double().square().sum()),
                float(w_base.double().square().sum()),
                w_base.numel(),
            )
        )
        if want_top:
            hist += torch.bincount(_bits(delta), minlength=_BINS)
    tops = _top_counts(base, tuned, mats, hist, top_percent, progress) if want_top else [0] * len(mats)
    rows = []
    for matrix, (abs_delta, abs_base, sq_delta, sq_base, n), top in zip(mats, sums, tops):
        values = {
            "rel_mean_abs": abs_delta / abs_base if abs_base else math.nan,
            "rel_frobenius": math.sqrt(sq_delta / sq_base) if sq_base else math.nan,
            "top_fraction": top / n,
        }
        for metric in metrics:
            rows.append(
                {
                    "layer": matrix.layer,
                    "module": matrix.module,
                    "metric": metric,
                    "value": values[metric],
                    "n_params": n,
                    "tensor": matrix.tensor,
                }
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs.update({"base": base.name, "tuned": tuned.name, "top_percent": top_percent})
    return table


def metric_label(metric: str, top_percent: float = 1.0) -> str:
    """How ``metric`` is normalised, for axis and panel titles."""
    return METRIC_LABELS[metric].format(top_percent=top_percent)


def change_profile(table: pd.DataFrame, metric: str = "rel_frobenius") -> pd.DataFrame:
    """``layer, value``: the size-weighted mean of ``metric`` over the modules of each layer (one
    number per layer, for locating where a fine-tune changed the model)."""
    rows = table[table["metric"] == metric]
    weighted = rows.assign(mass=rows["value"] * rows["n_params"]).groupby("layer")[["mass", "n_params"]].sum()
    return (weighted["mass"] / weighted["n_params"]).rename("value").reset_index()
