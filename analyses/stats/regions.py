"""Linguistic regions from importance maps (Zhang et al. 2024, Sec. 3.2-3.4; docs/methods/linguistic-regions.md).

A *region* is a boolean mask per parameter tensor. Selection is per tensor by default, as in
the reference: ``n = int(k * numel)`` entries of each tensor, the largest (``top``), smallest
(``bottom``) or a seeded random draw (``random``; the reference's draw was unseeded); ``per=
"global"`` ranks all entries together instead. Ties are broken arbitrarily, counts are exact.

* core region: top-k of ``sum over languages of |I_lang|`` (Sec. 3.2);
* monolingual region of ``L``: ``TopK(|I_L|) and not (union over L' != L of TopK(|I_L'|))``;
* dimensional dependence: entries of a region counted per row and column of each matrix
  (the reference helper ``calculate_row_bool_matrix``) and per hidden (residual-stream)
  dimension summed over every tensor that reads or writes it (Sec. 3.3, Fig. 2-3).

Masks are stored as packed bits (one bit per entry) in safetensors. Nothing here runs a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from probes.backend.errors import InputError

Masks = dict[str, torch.Tensor]  # parameter name -> bool tensor of the parameter's shape
Selection = Literal["top", "bottom", "random"]
SELECTIONS: tuple[str, ...] = ("top", "bottom", "random")

# modules whose weight [out, in] writes the residual stream: their rows index hidden dimensions;
# every other matrix with a d_model-sized input reads it, its columns index hidden dimensions
WRITES_RESIDUAL = ("o_proj", "down_proj", "out_proj", "dense", "c_proj", "fc2", "dense_4h_to_h")


def check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must lie strictly between 0 and 1 (0.01 is 1 %), not {fraction}")


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed, so a tensor's random draw does not depend on which others are selected."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "big")


def _pick(keys: torch.Tensor, n: int, largest: bool) -> torch.Tensor:
    flat = torch.zeros(keys.numel(), dtype=torch.bool)
    if n:
        flat[keys.reshape(-1).float().topk(n, largest=largest).indices] = True
    return flat


def select_tensor(
    scores: torch.Tensor, fraction: float, selection: Selection, *, seed: int = 0, name: str = ""
) -> torch.Tensor:
    """Mask of exactly ``int(fraction * numel)`` entries of one tensor (top, bottom or random)."""
    check_fraction(fraction)
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    n = int(fraction * scores.numel())
    if selection == "random":
        generator = torch.Generator().manual_seed(tensor_seed(seed, name))
        keys = torch.rand(scores.numel(), generator=generator)
        return _pick(keys, n, True).reshape(scores.shape)
    return _pick(scores.detach().cpu(), n, selection == "top").reshape(scores.shape)


def select(
    scores: Mapping[str, torch.Tensor],
    fraction: float,
    selection: Selection,
    *,
    per: Literal["tensor", "global"] = "tensor",
    seed: int = 0,
) -> Masks:
    """A region: per tensor (the reference code) or over all entries together (``global``)."""
    if per == "tensor":
        return {
            name: select_tensor(values, fraction, selection, seed=seed, name=name) for name, values in scores.items()
        }
    if per != "global":
        raise InputError(f"per must be 'tensor' or 'global', not {per!r}")
    check_fraction(fraction)
    names = sorted(scores)
    if selection == "random":
        generator = torch.Generator().manual_seed(seed)
        keys = torch.cat([torch.rand(scores[n].numel(), generator=generator) for n in names])
    else:
        keys = torch.cat([scores[n].detach().reshape(-1).float().cpu() for n in names])
    flat = _pick(keys, int(fraction * keys.numel()), selection != "bottom")
    del keys
    out, start = {}, 0
    for name in names:
        size = scores[name].numel()
        out[name] = flat[start : start + size].reshape(scores[name].shape)
        start += size
    return {name: out[name] for name in scores}


def core_scores(maps: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``sum over languages of |I_lang|`` per entry (the reference code: absolute value per language first)."""
    total: dict[str, torch.Tensor] = {}
    for imap in maps:
        for name, values in imap.items():
            if name in total:
                total[name].add_(values.float().abs())
            else:
                total[name] = values.float().abs()
    if not total:
        raise ValueError("core_scores needs at least one importance map")
    return total


def monolingual(tops: Mapping[str, Masks], lang: str) -> Masks:
    """``lang``'s region minus every entry in any other language's region (Sec. 3.4, Eq. 5)."""
    if lang not in tops:
        raise KeyError(f"no region for {lang!r}; regions exist for {', '.join(tops)}")
    others = [masks for other, masks in tops.items() if other != lang]
    out = {}
    for name, own in tops[lang].items():
        taken = torch.zeros_like(own)
        for masks in others:
            taken |= masks[name]
        out[name] = own & ~taken
    return out


def random_like(region: Masks, *, seed: int = 0) -> Masks:
    """A random region with the same number of entries per tensor as ``region`` (a control)."""
    out = {}
    for name, mask in region.items():
        generator = torch.Generator().manual_seed(tensor_seed(seed, name))
        out[name] = _pick(torch.rand(mask.numel(), generator=generator), int(mask.sum()), True).reshape(mask.shape)
    return out


def region_table(regions: Mapping[str, Masks]) -> pd.DataFrame:
    """Per region and tensor: entries selected and the selected fraction (the reference's CSV)."""
    rows = [
        {
            "region": label,
            "param": name,
            "numel": mask.numel(),
            "selected": int(mask.sum()),
            "fraction_selected": float(mask.sum()) / mask.numel(),
        }
        for label, masks in regions.items()
        for name, mask in masks.items()
    ]
    return pd.DataFrame.from_records(rows, columns=["region", "param", "numel", "selected", "fraction_selected"])


# ---- storage ----------------------------------------------------------------------------------


def save_masks(
    path: str | Path, masks: Mapping[str, torch.Tensor], metadata: Mapping[str, object] | None = None
) -> Path:
    """Packed bits (``numpy.packbits`` of the flattened mask) in safetensors; shapes and the
    caller's metadata (e.g. provenance) go to the file's metadata. Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = {
        name: torch.from_numpy(np.packbits(mask.reshape(-1).cpu().numpy().astype(bool))) for name, mask in masks.items()
    }
    meta = {
        "shapes": json.dumps({name: list(mask.shape) for name, mask in masks.items()}),
        "pivotlens": json.dumps(dict(metadata or {}), default=str),
    }
    tmp = path.with_suffix(".tmp")
    save_file(packed, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_masks(path: str | Path) -> tuple[Masks, dict[str, object]]:
    """Masks (bool, parameter-shaped) and the metadata stored with them."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        shapes = json.loads(meta["shapes"])
        masks = {}
        for name, shape in shapes.items():
            bits = np.unpackbits(handle.get_tensor(name).numpy())[: int(np.prod(shape))]
            masks[name] = torch.from_numpy(bits.astype(bool)).reshape(shape)
    return masks, json.loads(meta["pivotlens"])


# ---- dimensional structure ------------------------------------------------------------------


def row_column_counts(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Selected entries per row (``sum(dim=1)``) and per column (``sum(dim=0)``) of a matrix."""
    if mask.dim() != 2:
        raise ValueError(f"row/column counts need a matrix, not a tensor of shape {tuple(mask.shape)}")
    return mask.sum(dim=1), mask.sum(dim=0)


def top_dimensions(mask: torch.Tensor, num: int) -> dict[str, list[int]]:
    """The reference's ``calculate_row_bool_matrix``: the ``num`` rows and columns with the most
    and the fewest selected entries."""
    rows, cols = row_column_counts(mask)
    return {
        "top_rows": rows.topk(min(num, rows.numel())).indices.tolist(),
        "bottom_rows": rows.topk(min(num, rows.numel()), largest=False).indices.tolist(),
        "top_cols": cols.topk(min(num, cols.numel())).indices.tolist(),
        "bottom_cols": cols.topk(min(num, cols.numel()), largest=False).indices.tolist(),
    }


def residual_axis(name: str, shape: tuple[int, ...] | torch.Size, d_model: int) -> int | None:
    """Axis of a parameter that indexes the hidden (residual-stream) dimension, or ``None``.

    ``[out, in]`` weights of modules writing the residual (``o_proj``, ``down_proj``, ...) index
    it by row; matrices reading it (q, k, v, gate, up) by column; 1-D tensors of size d_model
    (RMSNorm weights) by their only axis. q/k norms (size head_dim) have none.
    """
    module = name.removesuffix(".weight").removesuffix(".bias").rsplit(".", 1)[-1]
    if len(shape) == 1:
        return 0 if shape[0] == d_model else None
    if len(shape) != 2:
        return None
    if module in WRITES_RESIDUAL:
        return 0 if shape[0] == d_model else None
    return 1 if shape[1] == d_model else None


def dimension_counts(masks: Mapping[str, torch.Tensor], d_model: int) -> pd.DataFrame:
    """Per hidden dimension: region entries on it, summed over every tensor that reads or writes
    it (all layers), and its share of them (uniform placement gives 1 / d_model each)."""
    counts = torch.zeros(d_model, dtype=torch.float64)
    for name, mask in masks.items():
        axis = residual_axis(name, mask.shape, d_model)
        if axis is None:
            continue
        counts += mask.sum(dim=1 - axis).double() if mask.dim() == 2 else mask.double()
    total = float(counts.sum())
    return pd.DataFrame(
        {
            "dim": np.arange(d_model),
            "count": counts.numpy(),
            "share": counts.numpy() / total if total else np.zeros(d_model),
        }
    )


def slice_ranking(mask: torch.Tensor, axis: int) -> torch.Tensor:
    """Indices along ``axis`` ordered by region entries in each slice, most first."""
    counts = mask.sum(dim=1 - axis) if mask.dim() == 2 else mask.long()
    return counts.argsort(descending=True, stable=True)


def concentration_table(regions: Mapping[str, Masks], layer_of, *, top: int = 5) -> pd.DataFrame:
    """Per region, matrix and axis: the share of the region's entries lying in the ``top`` rows
    (or columns) holding most of them. Compare a top region with its random control: uniform
    placement puts about ``top / n_slices`` (plus sampling noise) there.

    ``layer_of(name) -> (layer, module)`` names the tensor (from ``Backend.parameter_scopes()``).
    """
    rows = []
    for label, masks in regions.items():
        for name, mask in masks.items():
            if mask.dim() != 2 or not mask.any():
                continue
            layer, module = layer_of(name)
            total = int(mask.sum())
            for axis, counts in zip(("row", "col"), row_column_counts(mask)):
                k = min(top, counts.numel())
                rows.append(
                    {
                        "region": label,
                        "param": name,
                        "layer": layer,
                        "module": module,
                        "axis": axis,
                        "n_slices": counts.numel(),
                        "selected": total,
                        "top_share": float(counts.topk(k).values.sum()) / total,
                        "uniform_share": k / counts.numel(),
                        "max_count": int(counts.max()),
                    }
                )
    return pd.DataFrame.from_records(rows)


def mask_density(mask: torch.Tensor, bins: int = 128) -> pd.DataFrame:
    """A matrix mask averaged over blocks into at most ``bins x bins`` cells, for an image
    (tidy: ``row_bin, col_bin, row_start, col_start, density``)."""
    if mask.dim() != 2:
        raise ValueError(f"mask_density needs a matrix, not shape {tuple(mask.shape)}")
    n_rows, n_cols = mask.shape
    out_rows, out_cols = min(bins, n_rows), min(bins, n_cols)
    pooled = torch.nn.functional.adaptive_avg_pool2d(mask.float()[None, None], (out_rows, out_cols))[0, 0]
    r, c = torch.meshgrid(torch.arange(out_rows), torch.arange(out_cols), indexing="ij")
    return pd.DataFrame(
        {
            "row_bin": r.reshape(-1).numpy(),
            "col_bin": c.reshape(-1).numpy(),
            "row_start": (r.reshape(-1) * n_rows // out_rows).numpy(),
            "col_start": (c.reshape(-1) * n_cols // out_cols).numpy(),
            "density": pooled.reshape(-1).numpy(),
        }
    )


def _slices(shape: torch.Size, axis: int, index: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask.index_fill_(axis, index, True)
    return mask


def structured_region(
    region: Masks,
    n: int,
    which: Literal["top", "middle", "bottom", "random"],
    d_model: int,
    *,
    axis: Literal["residual", "other"] = "residual",
    seed: int = 0,
) -> Masks:
    """Whole rows or columns (Sec. 3.3, Table 3): in every matrix with a hidden-dimension axis,
    the ``n`` slices along that axis (``axis="other"``: along the other one) holding the most
    (``top``), a median number (``middle``), the fewest (``bottom``) entries of ``region``, or
    ``n`` random slices (seeded per tensor)."""
    out = {}
    for name, mask in region.items():
        hidden = residual_axis(name, mask.shape, d_model)
        if mask.dim() != 2 or hidden is None:
            continue
        along = hidden if axis == "residual" else 1 - hidden
        ranking = slice_ranking(mask, along)
        k = min(n, ranking.numel())
        if which == "top":
            index = ranking[:k]
        elif which == "bottom":
            index = ranking[-k:]
        elif which == "middle":
            start = (ranking.numel() - k) // 2
            index = ranking[start : start + k]
        elif which == "random":
            generator = torch.Generator().manual_seed(tensor_seed(seed, name))
            index = torch.randperm(ranking.numel(), generator=generator)[:k]
        else:
            raise ValueError(f"which must be top, middle, bottom or random, not {which!r}")
        out[name] = _slices(mask.shape, along, index)
    return out


def dimension_region(template: Mapping[str, torch.Tensor], dims: Iterable[int], d_model: int) -> Masks:
    """Hidden dimensions ``dims`` in every tensor that reads or writes them, across all layers
    (columns of q/k/v/gate/up, rows of o/down, entries of the norms): the single-dimension
    perturbation of Sec. 3.3 / Fig. 3. ``template`` gives the tensor names and shapes."""
    index = torch.as_tensor(list(dims), dtype=torch.long)
    if index.numel() and (index.min() < 0 or index.max() >= d_model):
        raise IndexError(f"dimensions {index.tolist()} outside 0..{d_model - 1}")
    out = {}
    for name, tensor in template.items():
        axis = residual_axis(name, tensor.shape, d_model)
        if axis is not None:
            out[name] = _slices(tensor.shape, axis, index)
    return out
