"""Lenses: how a layer's residual stream becomes a next-token distribution.

A lens is a small object: a per-layer affine *translator* ``h -> W_l h + b_l`` applied to the
residual ``h_l`` before the model's own final transform (final norm, unembedding, soft-cap).

* ``logit`` (nostalgebraist 2020; Wendler et al. 2024): no translator, the residual goes
  straight into the final transform. Its translate step returns the tensor it is given, so the
  logit lens through a :class:`Lens` is bit-for-bit the old path.
* ``linear`` (Din et al. 2023, "Jump to Conclusions", Eq. 2): the least-squares affine map
  from ``h_l`` to the last layer's ``h_L``, fitted in closed form (:mod:`probes.backend.lens_fit`).
* ``tuned`` (Belrose et al. 2023, "Eliciting Latent Predictions with the Tuned Lens", Eq. 4-5):
  an affine translator per layer trained to minimise ``KL(final || lens)``.

Fitted lenses live in the cache, keyed by the model's weights hash:
``<cache>/lenses/<hash>/<name>.safetensors`` beside ``<name>.json`` (the fit record: corpus,
languages, token count, seed, fit metrics, weights hash, ``fit_id`` = sha256 of the tensors).
Commands: ``pivotlens fit-lens``, ``pivotlens lens-eval``,
``--lens`` on ``lens``, ``lambda``, ``exit`` and ``diagnose`` (README, "Lenses").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from probes.backend.base import translate_residuals
from probes.backend.errors import PivotlensError

LensKind = Literal["logit", "linear", "tuned"]
KINDS: tuple[str, ...] = ("logit", "linear", "tuned")


class LensNotFittedError(PivotlensError):
    """A lens name with no fitted lens for this model's weights."""


class LensMismatchError(PivotlensError):
    """A lens fitted on other weights than the model's."""


@dataclass
class Lens:
    """A translator per layer (``weight[l]`` is ``[d, d]``, ``bias[l]`` is ``[d]``) or none (logit).

    ``record`` is the fit record (empty for the logit lens); ``fit_id`` identifies the fitted
    tensors and goes into every run key that used the lens.
    """

    kind: str
    name: str
    weight: torch.Tensor | None = None  # [n_layers, d, d]
    bias: torch.Tensor | None = None  # [n_layers, d]
    record: dict = field(default_factory=dict)

    @property
    def fit_id(self) -> str:
        return str(self.record.get("fit_id", ""))

    def key(self) -> dict[str, str]:
        """What a run key needs to tell this lens from another: its name and fit."""
        return {"lens": self.name, "lens_fit": self.fit_id}

    @property
    def translator(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(weight, bias)`` as the Backend's lens primitive takes them (plain tensors, so an
        nnsight trace, remote included, needs no pivotlens class); ``None`` for the logit lens."""
        return None if self.weight is None or self.bias is None else (self.weight, self.bias)

    def translate(self, layers: Sequence[int], resid: torch.Tensor) -> torch.Tensor:
        """``resid`` ``[len(layers), ..., d]`` -> the translated residuals, same shape."""
        return translate_residuals(self.translator, layers, resid)


LOGIT = Lens("logit", "logit")


def identity_lens(kind: str, name: str, n_layers: int, d_model: int) -> Lens:
    """A translator that is the identity at every layer (the tuned lens' initialisation)."""
    weight = torch.eye(d_model).expand(n_layers, d_model, d_model).clone()
    return Lens(kind, name, weight, torch.zeros(n_layers, d_model))


def default_name(kind: str, langs: Sequence[str] | None) -> str:
    """``linear`` for the balanced multilingual fit, ``linear-en`` for an English-only one."""
    return kind if not langs else f"{kind}-{'-'.join(langs)}"


def lens_dir(weights_hash: str) -> Path:
    from probes.backend.models import cache_dir

    return cache_dir() / "lenses" / re.sub(r"[^A-Za-z0-9_.-]", "_", weights_hash)


def tensors_id(weight: torch.Tensor, bias: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (weight, bias):
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_lens(lens: Lens, weights_hash: str, folder: Path | None = None) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (the record gains ``fit_id`` and
    ``weights_hash``); returns the tensor file's path."""
    from safetensors.torch import save_file

    from probes.backend.store import write_text_atomic

    if lens.weight is None or lens.bias is None:
        raise PivotlensError(f"lens {lens.name!r} has no translator to save (the logit lens needs none)")
    folder = folder or lens_dir(weights_hash)
    folder.mkdir(parents=True, exist_ok=True)
    lens.record.update(
        kind=lens.kind, name=lens.name, weights_hash=weights_hash, fit_id=tensors_id(lens.weight, lens.bias)
    )
    path = folder / f"{lens.name}.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file(
        {
            "weight": lens.weight.detach().cpu().float().contiguous(),
            "bias": lens.bias.detach().cpu().float().contiguous(),
        },
        str(tmp),
    )
    tmp.replace(path)
    write_text_atomic(json.dumps(lens.record, indent=2, default=str), path.with_suffix(".json"))
    return path


def fit_command(model_name: str, name: str) -> str:
    kind = name.split("-", maxsplit=1)[0]
    langs = name.split("-")[1:]
    options = f" --langs {','.join(langs)}" if langs else ""
    return f"pivotlens --model {model_name} fit-lens --kind {kind}{options}"


def load_lens(backend, name: str | Path) -> Lens:
    """The lens called ``name`` for this backend's model: ``logit``, a fitted name (``linear``,
    ``linear-en``, ``tuned``, ...) from the cache, or a path to a ``.safetensors`` lens file."""
    if isinstance(name, Lens):
        return name
    if str(name) == "logit":
        return LOGIT
    path = Path(name) if str(name).endswith(".safetensors") else lens_dir(backend.weights_hash) / f"{name}.safetensors"
    record_path = path.with_suffix(".json")
    if not path.is_file() or not record_path.is_file():
        raise LensNotFittedError(
            f"no lens {str(name)!r} fitted for {backend.model_name} (weights {backend.weights_hash}); "
            f"fit it first: {fit_command(backend.model_name, path.stem)}"
        )
    record = json.loads(record_path.read_text())
    if record.get("weights_hash") != backend.weights_hash:
        raise LensMismatchError(
            f"lens {path} was fitted on weights {record.get('weights_hash')}, but {backend.model_name} has "
            f"weights {backend.weights_hash}; refit it: {fit_command(backend.model_name, path.stem)}"
        )
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.shape != (backend.n_layers, backend.d_model, backend.d_model):
        raise LensMismatchError(
            f"lens {path} has shape {tuple(weight.shape)}, the model needs "
            f"{(backend.n_layers, backend.d_model, backend.d_model)}; refit it"
        )
    return Lens(record["kind"], record["name"], weight.to(backend.device), bias.to(backend.device), record)


def parse_lens_names(value: str, *, allow_all: bool = False) -> list[str]:
    """``"logit,linear"`` -> names; ``all`` (where allowed) -> the four lenses of the pivot test."""
    if allow_all and value == "all":
        return ["logit", "linear", "linear-en", "tuned"]
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n.split("-")[0] not in KINDS and not n.endswith(".safetensors")]
    if not names or bad:
        raise PivotlensError(
            f"unknown lens {bad or value!r}; use logit, linear, tuned (optionally -<langs>, e.g. linear-en)"
            + (" or all" if allow_all else "")
        )
    return names
