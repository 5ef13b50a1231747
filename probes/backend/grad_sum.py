"""Sum loss gradients over many batches without copying them (for Taylor importance, Zhang et al. 2024, Eq. 4).

``Backend.loss_and_grads`` returns a copy of every gradient, so a caller summing gradients holds
the gradients, their copies and its sum at once. :func:`add_loss_grads` runs the same backward
pass of the backend's own mean next-token loss, adds each gradient into the caller's tensor and
frees it at once: the sum is the only copy beyond what a bare backward pass needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from probes.backend.base import Backend, Encoded


def add_loss_grads(
    backend: Backend,
    enc: Encoded,
    labels: torch.Tensor,
    into: Mapping[str, torch.Tensor],
    transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, int]:
    """Add ``transform(name, grad)`` (default: the gradient itself) of the batch's mean
    next-token loss into ``into[name]`` for every named parameter (Hugging Face names; ``labels``
    aligned with the inputs, -100 ignored). ``transform`` may work in place on ``grad``.
    Returns the loss and the number of predicted tokens. Every ``.grad`` is ``None`` afterwards;
    call it inside ``backend.frozen_except(into)`` to spare the other parameters' gradients."""
    named = backend.named_parameters()
    missing = [n for n in into if n not in named or not named[n].requires_grad]
    if missing:
        raise KeyError(
            f"unknown or frozen parameters {missing[:3]}; use trainable Hugging Face names such as "
            f"{next(iter(named))!r}"
        )
    trainable = [p for p in named.values() if p.requires_grad]
    for p in trainable:
        p.grad = None
    loss = backend._loss(enc, labels.to(enc.input_ids.device))
    loss.backward()
    with torch.no_grad():
        for name, total in into.items():
            grad, named[name].grad = named[name].grad, None
            if grad is not None:
                total.add_(transform(name, grad) if transform is not None else grad)
            del grad
    for p in trainable:
        p.grad = None
    return loss.detach().item(), int((labels[:, 1:] != -100).sum())
