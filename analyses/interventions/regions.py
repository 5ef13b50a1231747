"""Region interventions (Zhang et al. 2024, Sec. 3.2-3.5; spec 4.3): remove a region (zero it,
reset it to other values, perturb it or scale it), and freeze a region during further training
by restoring it after every optimizer step (``theta <- theta * (1 - M) + theta_saved * M``).

Everything works on a mapping ``name -> parameter`` (``Backend.named_parameters()`` or a
``transformers`` model's ``dict(model.named_parameters())``) and region masks from
:mod:`analyses.stats.regions`. Removal is in place and undone by :func:`restore` (or use
:func:`region_removed`); :func:`write_modified_model` writes a model folder the loader takes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import torch
from transformers import TrainerCallback

from analyses.stats.regions import Masks, tensor_seed

How = Literal["zero", "reset", "perturb", "scale"]
HOWS: tuple[str, ...] = ("zero", "reset", "perturb", "scale")
Saved = dict[str, torch.Tensor]  # parameter name -> the region's original entries (flattened)


def _targets(params: Mapping[str, torch.Tensor], masks: Masks) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, flat parameter view, flat indices of the region)`` for every non-empty mask."""
    missing = [n for n in masks if n not in params]
    if missing:
        raise KeyError(
            f"the masks name parameters the model lacks, e.g. {missing[:3]}; "
            f"masks use Hugging Face names such as {next(iter(params))!r}"
        )
    for name, mask in masks.items():
        param = params[name]
        if tuple(mask.shape) != tuple(param.shape):
            raise ValueError(f"mask of {name} has shape {tuple(mask.shape)}, the parameter {tuple(param.shape)}")
        index = mask.reshape(-1).nonzero().squeeze(1).to(param.device)
        if index.numel():
            yield name, param.data.view(-1), index


def apply_region(
    params: Mapping[str, torch.Tensor],
    masks: Masks,
    how: How = "zero",
    *,
    values: Mapping[str, torch.Tensor] | float | None = None,
    factor: float = 0.0,
    seed: int = 0,
) -> Saved:
    """Change the region's entries in place and return their original values.

    ``zero``: 0 (the paper's removal). ``reset``: ``values`` (a constant, or tensors of the
    parameters' shapes, e.g. another checkpoint). ``perturb``: random re-initialisation,
    ``N(0, std of the tensor)`` drawn with ``seed`` (Sec. 3.3). ``scale``: multiply by ``factor``.
    """
    if how not in HOWS:
        raise ValueError(f"how must be one of {HOWS}, not {how!r}")
    if how == "reset" and values is None:
        raise ValueError("how='reset' needs values: a constant or tensors named like the parameters")
    saved: Saved = {}
    with torch.no_grad():
        for name, flat, index in _targets(params, masks):
            saved[name] = flat[index].clone()
            if how == "zero":
                flat[index] = 0
            elif how == "scale":
                flat[index] = flat[index] * factor
            elif how == "perturb":
                generator = torch.Generator().manual_seed(tensor_seed(seed, name))
                noise = torch.randn(index.numel(), generator=generator) * float(flat.float().std())
                flat[index] = noise.to(flat.dtype).to(flat.device)
            elif isinstance(values, Mapping):
                flat[index] = values[name].reshape(-1).to(flat.device, flat.dtype)[index]
            else:
                flat[index] = float(values)  # type: ignore[arg-type]
    return saved


def restore(params: Mapping[str, torch.Tensor], masks: Masks, saved: Saved) -> None:
    """Put back the entries :func:`apply_region` changed."""
    with torch.no_grad():
        for name, flat, index in _targets(params, masks):
            flat[index] = saved[name].to(flat.device)


@contextlib.contextmanager
def region_removed(params: Mapping[str, torch.Tensor], masks: Masks, how: How = "zero", **options) -> Iterator[None]:
    """``with region_removed(backend.named_parameters(), masks): ...`` measures the model
    without the region and restores it afterwards, even on error."""
    saved = apply_region(params, masks, how, **options)
    try:
        yield
    finally:
        restore(params, masks, saved)


def write_modified_model(model: str | Path, masks: Masks, folder: str | Path, how: How = "zero", **options) -> Path:
    """Load ``model`` (embedded name, folder or hub id), change the region, and save a model
    folder that ``probes.backend.load(folder)`` takes; ``pivotlens-intervention.json`` records
    what was done."""
    from probes.backend.models import load_hf

    hf_model, tokenizer, name, source = load_hf(model)
    apply_region(dict(hf_model.named_parameters()), masks, how, **options)
    folder = Path(folder)
    hf_model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    record = {
        "base_model": name,
        "base_source": source,
        "intervention": how,
        "n_entries": int(sum(int(m.sum()) for m in masks.values())),
        "n_tensors": len(masks),
        "options": {k: v for k, v in options.items() if not isinstance(v, Mapping)},
    }
    (folder / "pivotlens-intervention.json").write_text(json.dumps(record, indent=2, default=str))
    return folder


class RegionFreeze:
    """Freeze-by-restore (spec 4.3, the reference's ``region_freeze_train.py``): call
    :meth:`restore` before training and after every optimizer step; the region's entries go
    back to their saved values (or to zero with ``at_zero``). Optimizer states still move: this
    is not gradient masking. Only the region's entries are kept, not a copy of the model.

    ``exclude_norms`` (default, as the reference) leaves tensors whose name contains ``norm`` free.
    """

    def __init__(
        self, params: Mapping[str, torch.Tensor], masks: Masks, *, at_zero: bool = False, exclude_norms: bool = True
    ) -> None:
        kept = {n: m for n, m in masks.items() if not (exclude_norms and "norm" in n)}
        self.targets = list(_targets(params, kept))
        with torch.no_grad():
            self.saved = [
                torch.zeros_like(flat[index]) if at_zero else flat[index].clone() for _, flat, index in self.targets
            ]
        self.n_entries = sum(int(index.numel()) for _, _, index in self.targets)

    def restore(self) -> None:
        with torch.no_grad():
            for (_, flat, index), values in zip(self.targets, self.saved):
                flat[index] = values


class RegionFreezeCallback(TrainerCallback):
    """A ``transformers`` ``TrainerCallback`` freezing a region: the values are saved when
    training begins and restored then and at every ``on_step_end`` (after the optimizer step)."""

    def __init__(self, masks: Masks, *, at_zero: bool = False, exclude_norms: bool = True) -> None:
        self.masks, self.at_zero, self.exclude_norms = masks, at_zero, exclude_norms
        self.freeze: RegionFreeze | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("RegionFreezeCallback needs the model; the transformers Trainer passes it to callbacks")
        params = dict(model.named_parameters())
        self.freeze = RegionFreeze(params, self.masks, at_zero=self.at_zero, exclude_norms=self.exclude_norms)
        self.freeze.restore()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.freeze is not None:
            self.freeze.restore()
        return control
