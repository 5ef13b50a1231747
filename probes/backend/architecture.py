"""Where a causal LM keeps its blocks, final norm and unembedding, and the transform from the last
residual to the logits (validated at load, as nnterp does).

The parts are found through transformers' own API: the unembedding is
``get_output_embeddings()``, the decoder ``get_decoder()``; its blocks are the ``ModuleList`` of
``num_hidden_layers`` entries and its final norm the child under one of the names transformers 5
uses (``norm``, ``ln_f``, ``final_layer_norm``, ``final_layernorm``, ...). The final transform
(norm, head, then any scaling and soft-cap that the model class's ``forward`` applies to the
logits) is described once, in :class:`FinalTransform`, and checked against the model's own logits
when a backend wraps a model (:meth:`ModelParts.verify`), so a scaling pivotlens does not know is
refused instead of giving silently wrong numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

import torch

from probes.backend.errors import UnsupportedArchitectureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Names transformers 5 gives the decoder's final norm (Llama/Gemma/Qwen/Mistral/Phi-3/OLMo/Cohere:
# norm; GPT-2/BLOOM/Falcon: ln_f; GPT-NeoX/OPT: final_layer_norm; Persimmon/Phi: final_layernorm).
_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm", "norm_f")


def _logit_scale(model) -> float:
    return float(model.logit_scale)


def _inverse_logits_scaling(model) -> float:
    return 1.0 / float(model.config.logits_scaling)


def _logits_scaling(model) -> float:
    return float(model.config.logits_scaling)


def _lm_head_multiplier(model) -> float:
    return float(model.model.lm_head_multiplier)


# Multipliers that ``*ForCausalLM.forward`` applies to ``lm_head``'s output, per ``model_type``
# (read from the transformers 5 modeling code): Cohere ``logits * self.logit_scale``, Granite
# ``logits / config.logits_scaling``, HyperCLOVA X ``* config.logits_scaling``, Falcon-H1
# ``* model.lm_head_multiplier``.
_LOGIT_MULTIPLIERS: dict[str, Callable[[torch.nn.Module], float]] = {
    **dict.fromkeys(("cohere", "cohere2", "cohere2_moe", "cohere_compass"), _logit_scale),
    **dict.fromkeys(
        ("granite", "granite_swa", "granitemoe", "granitemoe_swa", "granitemoehybrid", "granitemoeshared"),
        _inverse_logits_scaling,
    ),
    "hyperclovax": _logits_scaling,
    "falcon_h1": _lm_head_multiplier,
}


@dataclass(frozen=True)
class FinalTransform:
    """What the model does to the logits after the unembedding: ``logits * multiplier``, then the
    soft-cap ``c * tanh(logits / c)`` (Gemma 2-4 ``final_logit_softcapping``, RecurrentGemma
    ``logits_soft_cap``) where the model has one. No architecture of transformers 5 has both."""

    multiplier: float = 1.0
    softcap: float | None = None

    @classmethod
    def of(cls, model: PreTrainedModel) -> FinalTransform:
        config = model.config
        multiplier = _LOGIT_MULTIPLIERS.get(config.model_type)
        cap = getattr(config, "final_logit_softcapping", None) or getattr(config, "logits_soft_cap", None)
        return cls(1.0 if multiplier is None else multiplier(model), float(cap) if cap else None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.multiplier != 1.0:
            logits = logits * self.multiplier
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def describe(self) -> str:
        """A short description for provenance and the architecture table ("" when it is the identity)."""
        parts = [f"logits x {self.multiplier:g}"] if self.multiplier != 1.0 else []
        parts += [f"soft-cap {self.softcap:g}"] if self.softcap is not None else []
        return ", ".join(parts)


def _get(root, path: str) -> Any:
    """The attribute at a dotted ``path`` (a module of the model, or an nnsight envoy of it)."""
    return reduce(getattr, path.split("."), root)


def _path_of(model: torch.nn.Module, module: torch.nn.Module) -> str | None:
    return next((name for name, candidate in model.named_modules() if candidate is module), None)


def _missing(model: torch.nn.Module, part: str, looked: str) -> UnsupportedArchitectureError:
    return UnsupportedArchitectureError(
        f"{type(model).__name__}: pivotlens cannot find its {part} ({looked}); "
        "add the name to probes/backend/architecture.py"
    )


@dataclass(frozen=True)
class ModelParts:
    """Attribute paths of the blocks, final norm and unembedding, and the final transform."""

    blocks: str
    norm: str
    head_path: str
    transform: FinalTransform

    @classmethod
    def locate(cls, model: PreTrainedModel) -> ModelParts:
        """Find the parts, or raise :class:`UnsupportedArchitectureError` naming the one missing."""
        n_layers = model.config.num_hidden_layers
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        head_path = _path_of(model, head) if isinstance(head, torch.nn.Module) else None
        if head_path is None:
            raise _missing(model, "unembedding", "get_output_embeddings() returned no module")
        decoder = model.get_decoder()
        decoder_path = _path_of(model, decoder)
        lists = [
            name
            for name, child in decoder.named_children()
            if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers
        ]
        if len(lists) != 1:
            raise _missing(
                model, "decoder blocks", f"one ModuleList of {n_layers} blocks under {decoder_path or 'the model'}"
            )
        norm = next((name for name in _NORM_NAMES if isinstance(getattr(decoder, name, None), torch.nn.Module)), None)
        if norm is None:
            raise _missing(model, "final norm", f"{decoder_path or 'the model'}.{{{', '.join(_NORM_NAMES)}}}")
        prefix = f"{decoder_path}." if decoder_path else ""
        return cls(prefix + lists[0], prefix + norm, head_path, FinalTransform.of(model))

    def block_list(self, model) -> torch.nn.ModuleList:
        return _get(model, self.blocks)

    def final_norm(self, model):
        return _get(model, self.norm)

    def head(self, model):
        return _get(model, self.head_path)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        """The model's logits of residuals ``[..., d_model]`` read after its last block: final
        norm, unembedding and :class:`FinalTransform` (``model`` is the Hugging Face model or an
        nnsight envoy of it)."""
        return self.transform(self.head(model)(self.final_norm(model)(hidden)))

    def verify(self, model: torch.nn.Module) -> None:
        """Check on a short input that :meth:`logits` of the last block's output is the model's
        own output; a mismatch means the model transforms its logits in a way pivotlens does not
        know, and is refused rather than giving wrong lens and loss numbers."""
        ids = torch.arange(1, 5, device=next(model.parameters()).device).unsqueeze(0)
        kept: list[torch.Tensor] = []

        def keep(module, args, output):
            kept.append(output[0] if isinstance(output, tuple) else output)

        handle = self.block_list(model)[-1].register_forward_hook(keep)
        try:
            with torch.no_grad():
                own = model(input_ids=ids, use_cache=False).logits.float()
                ours = self.logits(model, kept[-1]).float()
        finally:
            handle.remove()
        gap = (own - ours).abs().max().item()
        tolerance = (1e-4 if own.dtype == torch.float32 and model.dtype == torch.float32 else 2e-2) * max(
            1.0, own.abs().max().item()
        )
        if not gap <= tolerance:
            raise UnsupportedArchitectureError(
                f"{type(model).__name__}: the last block's output through the final norm, unembedding and "
                f"{self.transform.describe() or 'no logit scaling'} differs from the model's logits by {gap:.3g}; "
                "its forward transforms the logits in a way pivotlens does not know: add it to "
                "probes/backend/architecture.py::_LOGIT_MULTIPLIERS"
            )
