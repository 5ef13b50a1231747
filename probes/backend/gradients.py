"""Differentiable next-token loss of the logit lens at any block, and its gradient streamed one
parameter tensor at a time.

Two uses (PROM, Lee et al., Sec. 2.1-2.2, Eq. 3; docs/methods/prom.md): the pivoted loss ``L_{n,e}`` reads a
batch out at block ``n`` through the final norm and unembedding (or a separate head) with label
smoothing, and the gradient cosine between two batches needs both gradients without two full
copies in memory beyond what it needs (:class:`GradStream` hands out each tensor's gradient and
frees it). Everything here is plain torch on the Hugging Face model, so a training loop and a
backend compute the same loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import torch

from probes.backend.architecture import ModelParts
from probes.backend.scopes import frozen_except

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Reduction = Literal["token_mean", "sequence_mean"]
REDUCTIONS: tuple[str, ...] = ("token_mean", "sequence_mean")


class _Stop(Exception):
    """Raised by the hook on the read-out block, so later blocks are never computed."""


def unwrap(model: torch.nn.Module) -> PreTrainedModel:
    """The ``transformers`` model inside a peft wrapper (LoRA layers stay injected in it)."""
    base = getattr(model, "get_base_model", None)
    # torch types any attribute of a module as Tensor | Module; both are transformers models here
    return cast("PreTrainedModel", base() if base is not None else model)


def block_output(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Residual stream after block ``layer`` (0-based), ``[batch, seq, d_model]``, differentiable;
    the forward pass stops after that block."""
    model = unwrap(model)
    blocks = ModelParts.locate(model).block_list(model)
    if not 0 <= layer < len(blocks):
        raise IndexError(f"layer {layer} does not exist: the model has blocks 0..{len(blocks) - 1}")
    kept: list[torch.Tensor] = []

    def keep(module, args, output):
        kept.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = blocks[layer].register_forward_hook(keep)
    try:
        model(**inputs, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return kept[0]


def lens_logits(
    model: torch.nn.Module, hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Logits of residuals: the model's own final transform (final norm, unembedding, logit
    scaling or soft-cap), or ``head`` (a module mapping residuals to logits, e.g. a trainable copy
    of norm + unembedding)."""
    if head is not None:
        return head(hidden)
    model = unwrap(model)
    return ModelParts.locate(model).logits(model, hidden)


def scored_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    rows: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    reduction: Reduction = "token_mean",
) -> torch.Tensor:
    """Cross-entropy of ``[m, vocab]`` logits at the scored positions against ``targets`` (``[m]``);
    ``rows`` (``[m]``) says which sequence each position belongs to.

    ``token_mean``: mean over every scored token of the batch (long answers weigh more);
    ``sequence_mean``: mean over sequences of each sequence's token mean. ``label_smoothing`` is
    torch's (PROM's alpha on ``L_{n,e}``)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
    if targets.numel() == 0:
        raise ValueError("the batch has no scored token (every label is -100); check the labels")
    logits = logits.float()
    if reduction == "token_mean":
        return torch.nn.functional.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    per_token = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=label_smoothing, reduction="none")
    _, index, counts = torch.unique(rows, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), device=per_token.device).index_add(0, index, per_token)
    return (sums / counts).mean()


def _scored(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask ``[batch, seq-1]`` of positions whose next token is scored, their targets and rows."""
    shifted = labels[:, 1:]
    mask = shifted != -100
    return mask, shifted[mask], mask.nonzero()[:, 0]


def lens_loss(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    layer: int | None = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "token_mean",
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Next-token loss of the batch read out after block ``layer`` (``None``: the last block, i.e.
    the model's output) through the model's head or ``head``. PROM's ``L_{n,e}`` is
    ``lens_loss(model, english, labels, layer=n, label_smoothing=alpha)``; ``L_{N,t}`` is
    ``lens_loss(model, target, labels)``. Only the scored positions go through the head (the
    unembedding of a large vocabulary is most of a small model's cost)."""
    n_layers = len(ModelParts.locate(unwrap(model)).block_list(unwrap(model)))
    at = n_layers - 1 if layer is None else (layer + n_layers if layer < 0 else layer)
    hidden = block_output(model, inputs, at)
    mask, targets, rows = _scored(labels.to(hidden.device))
    logits = lens_logits(model, hidden[:, :-1][mask], head)
    return scored_loss(logits, targets, rows, label_smoothing=label_smoothing, reduction=reduction)


@dataclass
class GradStream:
    """The gradient of one loss, handed out one parameter tensor at a time.

    Iterating yields ``(name, grad)`` in parameter order and frees each ``.grad`` as it goes, so
    a consumer that reduces each tensor (a dot product, a norm) never holds a second full copy.
    A parameter the loss does not reach yields zeros. ``loss`` is the loss value, ``n_tokens``
    the number of scored tokens."""

    loss: float
    n_tokens: int
    params: dict[str, torch.nn.Parameter] = field(repr=False)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, param in self.params.items():
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            param.grad = None
            yield name, grad


def stream_grads(
    model: torch.nn.Module,
    trainable: Mapping[str, torch.nn.Parameter],
    inputs: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    params: Sequence[str] | None = None,
    **loss_options,
) -> GradStream:
    """Backward pass of :func:`lens_loss` for the named parameters only: the others are frozen
    for the pass (so autograd skips what no requested parameter needs) and restored after."""
    wanted = list(trainable) if params is None else list(params)
    missing = [n for n in wanted if n not in trainable]
    if missing:
        raise KeyError(f"unknown parameters {missing[:3]}; use Hugging Face names such as {next(iter(trainable))!r}")
    for p in trainable.values():
        p.grad = None
    with frozen_except(trainable, wanted):
        loss = lens_loss(model, inputs, labels, **loss_options)
        if loss.requires_grad:  # else no requested parameter lies before the read-out: all zeros
            loss.backward()
    n_tokens = int((labels[:, 1:] != -100).sum())
    return GradStream(loss.detach().item(), n_tokens, {n: trainable[n] for n in wanted})
