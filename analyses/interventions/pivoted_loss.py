"""PROM's pivoted objective (Lee et al., Sec. 2.2, Eq. 3) and the interference measured under it
(Sec. 2.1, Fig. 2).

    L = lambda · L_{n,e} + L_{N,t}

``L_{n,e}``: next-token loss of the English (pivot) batch read out after block ``n`` through an
LM head (the model's own final norm and unembedding by default, or a separate trainable copy:
PROM's "an LM head" vs "another LM head"), with label smoothing ``alpha``. ``L_{N,t}``: the
target-language batch at the model's output. PROM's defaults (Sec. 3.1, Table 4): n = 24 of 32
(three quarters of the depth, :func:`analyses.stats.prom_lambda.prom_layer`), alpha = 0.1,
lambda = 0.1; its regulation (Sec. 2.3) sets lambda = 0 where the model does not pivot through
English (:func:`analyses.stats.prom_lambda.lambda_table`).

A batch is a dict as ``transformers`` takes it: ``input_ids``, ``attention_mask``, optionally
``position_ids``, and ``labels`` aligned with the inputs (``-100`` = not scored).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from analyses.stats.prom_lambda import prom_layer
from probes.backend.architecture import ModelParts
from probes.backend.errors import LayerError
from probes.backend.gradients import Reduction, lens_loss, unwrap
from probes.interference import AT_OUTPUT, Readout


@dataclass(frozen=True)
class PivotedObjective:
    """``layer``: PROM's n as a 0-based block index (``None``: three quarters of the depth);
    ``alpha``: label smoothing of ``L_{n,e}``; ``lam``: its weight."""

    layer: int | None = None
    alpha: float = 0.1
    lam: float = 0.1

    def at(self, n_layers: int) -> int:
        """The 0-based read-out block for a model of ``n_layers`` blocks."""
        layer = prom_layer(n_layers) if self.layer is None else self.layer
        layer = layer + n_layers if layer < 0 else layer
        if not 0 <= layer < n_layers:
            raise LayerError(
                f"pivot layer {self.layer} does not exist: the model has blocks 0..{n_layers - 1}; "
                f"use a layer from 0 to {n_layers - 1}"
            )
        return layer

    def readouts(self, n_layers: int) -> tuple[Readout, Readout]:
        """Where the interference probe reads each side: (pivot batch, target batch)."""
        return Readout(self.at(n_layers), self.alpha, self.lam), AT_OUTPUT


@dataclass
class PivotedLoss:
    """``total = lam · pivot + target`` (differentiable), and its two terms."""

    total: torch.Tensor
    target: torch.Tensor
    pivot: torch.Tensor


class PivotHead(torch.nn.Module):
    """A separate LM head for ``L_{n,e}``: trainable copies of the model's final norm and
    unembedding (and its logit scaling or soft-cap), initialised from the model's own."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        base = unwrap(model)
        parts = ModelParts.locate(base)
        self.norm = copy.deepcopy(parts.final_norm(base))
        self.unembed = copy.deepcopy(parts.head(base))
        self.unembed.weight = torch.nn.Parameter(self.unembed.weight.detach().clone())  # untie from the embedding
        self.transform = parts.transform

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.transform(self.unembed(self.norm(hidden)))


def _split(batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    if "labels" not in batch:
        raise KeyError("a batch needs 'labels' (input ids with -100 where no loss is taken)")
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
    return inputs, batch["labels"]


def pivoted_loss(
    model: torch.nn.Module,
    target: Mapping[str, torch.Tensor],
    pivot: Mapping[str, torch.Tensor],
    objective: PivotedObjective = PivotedObjective(),
    *,
    head: torch.nn.Module | None = None,
    reduction: Reduction = "token_mean",
) -> PivotedLoss:
    """PROM Eq. 3 for one step: ``target`` (language t) at the output, ``pivot`` (English) after
    block ``objective.at(depth)`` through ``head`` (default: the model's own final norm and
    unembedding) with label smoothing. ``model`` may be a peft (LoRA) model. With ``lam = 0``
    the pivot batch is not run at all."""
    n_layers = len(ModelParts.locate(unwrap(model)).block_list(unwrap(model)))
    inputs_t, labels_t = _split(target)
    loss_t = lens_loss(model, inputs_t, labels_t, reduction=reduction)
    if objective.lam == 0:
        zero = loss_t.new_zeros(())
        return PivotedLoss(loss_t, loss_t, zero)
    inputs_e, labels_e = _split(pivot)
    loss_e = lens_loss(
        model,
        inputs_e,
        labels_e,
        layer=objective.at(n_layers),
        label_smoothing=objective.alpha,
        reduction=reduction,
        head=head,
    )
    return PivotedLoss(objective.lam * loss_e + loss_t, loss_t, loss_e)
