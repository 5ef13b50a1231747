"""Floor 1: loading, the model cache, the :class:`Backend` interface and its two implementations,
token sets, languages and the results store."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Literal

from probes.backend import models
from probes.backend.errors import PivotlensError
from probes.backend.models import DEFAULT_MODEL, EMBEDDED, weights_fingerprint

if TYPE_CHECKING:
    import torch

    from probes.backend.base import Backend, Encoded, Generation, LensReadout, LensRequest, LossGrads

# imported on first use, so that importing pivotlens (and `pivotlens --help`) does not load torch
_FROM_BASE = ("Backend", "Encoded", "Generation", "LensReadout", "LensRequest", "LossGrads")


def __getattr__(name: str):
    if name in _FROM_BASE:
        from probes.backend import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BackendName = Literal["transformer-lens", "nnsight"]
BACKENDS: tuple[str, ...] = ("transformer-lens", "nnsight")

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "EMBEDDED",
    "Backend",
    "Encoded",
    "Generation",
    "LensReadout",
    "LensRequest",
    "LossGrads",
    "load",
    "wrap",
]


def wrap(
    hf_model,
    tokenizer,
    *,
    backend: BackendName = "transformer-lens",
    model_name: str = "model",
    source: str = "memory",
    weights_hash: str = "unknown",
    remote: bool | str = False,
) -> Backend:
    """Wrap an already loaded ``transformers`` model (the backend owns it from then on).

    Where transformer-lens cannot wrap the architecture, this warns in one line and falls back to
    nnsight; a model whose blocks, final norm or unembedding cannot be found, or whose logits
    pivotlens cannot reproduce, is refused with an error naming the part."""
    info = {"model_name": model_name, "source": source, "weights_hash": weights_hash}
    if backend == "nnsight":
        from probes.backend.nnsight_backend import NNsightBackend

        return NNsightBackend(hf_model, tokenizer, remote=remote, **info)
    if backend != "transformer-lens":
        raise PivotlensError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if remote:
        raise PivotlensError("remote execution (NDIF) goes through nnsight; use backend='nnsight'")
    from probes.backend.tl import TransformerLensBackend, TransformerLensUnsupported

    try:
        return TransformerLensBackend(hf_model, tokenizer, **info)
    except TransformerLensUnsupported as exc:
        warnings.warn(
            f"transformer-lens cannot wrap {type(hf_model).__name__} ({exc}); falling back to nnsight", stacklevel=2
        )
    from probes.backend.nnsight_backend import NNsightBackend

    return NNsightBackend(hf_model, tokenizer, **info)


def load(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    backend: BackendName = "transformer-lens",
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    device_map: str | dict[str, str | int] | None = None,
    remote: bool | str = False,
) -> Backend:
    """Load a model behind a backend.

    ``model`` is an embedded model (``gemma-3-270m``, ``smollm2-135m``), a local folder, or a
    Hugging Face id. ``device`` and ``dtype`` (``float32``, ``bfloat16``, ``float16``) place
    the weights; ``device_map`` (e.g. ``"auto"``) spreads a large model over several GPUs.
    ``remote=True`` runs nnsight traces on NDIF (API key from ``NDIF_API_KEY``);
    ``remote="local"`` runs the same round-trip on this machine.
    """
    if remote is True:  # NDIF runs the weights; locally we only need the config and tokenizer
        hf_model, tokenizer, name, source = models.load_meta(model)
    else:
        hf_model, tokenizer, name, source = models.load_hf(model, device=device, dtype=dtype, device_map=device_map)
    return wrap(
        hf_model,
        tokenizer,
        backend=backend,
        model_name=name,
        source=source,
        weights_hash=weights_fingerprint(source, getattr(hf_model.config, "_commit_hash", None)),
        remote=remote,
    )
