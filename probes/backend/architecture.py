"""Where a causal LM keeps its blocks, final norm and unembedding (validated at load, as nnterp does)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probes.backend.errors import UnsupportedArchitectureError

# (blocks, final norm, unembedding) attribute paths of the decoder families we know.
_LAYOUTS = (
    ("model.layers", "model.norm", "lm_head"),  # Llama, Gemma 1-3, Mistral, Qwen, Phi-3, OLMo
    ("transformer.h", "transformer.ln_f", "lm_head"),  # GPT-2, GPT-J, Bloom, Falcon
    ("gpt_neox.layers", "gpt_neox.final_layer_norm", "embed_out"),  # Pythia / GPT-NeoX
    ("model.decoder.layers", "model.decoder.final_layer_norm", "lm_head"),  # OPT
)


def _get(root: torch.nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@dataclass(frozen=True)
class ModelParts:
    """Attribute paths of the blocks, final norm and unembedding, and the logit soft-cap."""

    blocks: str
    norm: str
    head_path: str
    final_logit_softcap: float | None

    @classmethod
    def locate(cls, model: torch.nn.Module) -> ModelParts:
        for blocks, norm, head in _LAYOUTS:
            layers = _get(model, blocks)
            if (
                isinstance(layers, torch.nn.ModuleList)
                and _get(model, norm) is not None
                and _get(model, head) is not None
            ):
                if len(layers) != model.config.num_hidden_layers:
                    continue
                cap = getattr(model.config, "final_logit_softcapping", None)
                return cls(blocks, norm, head, float(cap) if cap else None)
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} is not a decoder layout pivotlens knows (blocks, final norm and "
            f"unembedding at one of {[layout for layout in _LAYOUTS]}); add its layout to "
            "probes/backend/architecture.py::_LAYOUTS"
        )

    def block_list(self, model) -> torch.nn.ModuleList:
        return _get(model, self.blocks)

    def final_norm(self, model):
        return _get(model, self.norm)

    def head(self, model):
        return _get(model, self.head_path)

    def softcap(self, logits: torch.Tensor) -> torch.Tensor:
        """Gemma-2-style final logit soft-capping, ``c * tanh(logits / c)``, where the model has it."""
        if self.final_logit_softcap is None:
            return logits
        return torch.tanh(logits / self.final_logit_softcap) * self.final_logit_softcap
