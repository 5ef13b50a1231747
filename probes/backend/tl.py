"""transformer-lens 4 backend: a ``TransformerBridge`` over the Hugging Face model.

The bridge rewires the model it is given in place: its modules are renamed (GPT-2's ``c_attn``
becomes ``qkv``, parameter names gain ``._original_component.``) and fused tensors (GPT-2
``c_attn``, Phi-3 ``qkv_proj`` / ``gate_up_proj``, BLOOM and GPT-NeoX ``query_key_value``) are
split into q/k/v parameters of its own. So the bridge gets a *twin* of the model: new module
objects holding the same parameter tensors (nothing is copied but the module tree). Parameters,
gradients, losses and generation use the untouched Hugging Face model, under Hugging Face's names
with each fused tensor once, exactly as on nnsight; the bridge only supplies the residual stream.
Where the bridge's split tensors are copies rather than views (BLOOM's per-head interleaved
``query_key_value``), an in-place edit of the fused tensor after wrapping is not seen by the
bridge: wrap the edited model again.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import torch

from probes.backend.base import (
    Backend,
    Encoded,
    LensRead,
    LensReadout,
    ReadPlan,
    resolve_positions,
)


class TransformerLensUnsupported(Exception):
    """transformer-lens could not build its bridge over the model, or the bridge lacks a
    residual hook (the message: the error's class, e.g. ``ValueError``, or the missing hook);
    :func:`probes.backend.wrap` falls back to nnsight."""


class _Stop(Exception):
    """Raised by the hook of the last layer a request needs, so later blocks and the full
    vocabulary projection over every position are never computed."""


def _bridge_tokenizer(tokenizer):
    """A copy for the bridge, which re-configures (and may reload) the tokenizer it is given.

    pivotlens tokenizes before the bridge sees anything, so the bridge's copy is never used to
    encode; marking it ``add_bos_token`` stops transformer-lens from reloading it by name.
    """
    bridge_copy = copy.deepcopy(tokenizer)
    bridge_copy.init_kwargs.setdefault("name_or_path", tokenizer.name_or_path)
    bridge_copy.init_kwargs["add_bos_token"] = True
    return bridge_copy


def _twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model``'s module tree sharing every parameter and buffer tensor with it."""
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo=shared)


class TransformerLensBackend(Backend):
    """Backend on transformer-lens 4's ``TransformerBridge`` (hook ``blocks.{l}.hook_resid_post``)."""

    name = "transformer-lens"

    def __init__(self, hf_model, tokenizer, **info: str) -> None:
        from transformer_lens.model_bridge import TransformerBridge

        from probes.backend.tl_compat import patch_kv_cache_argument

        patch_kv_cache_argument()  # else cached generation through the bridge (bridge.generate) ignores the prompt
        super().__init__(hf_model, tokenizer, **info)
        try:
            self.bridge = TransformerBridge.boot_transformers(
                info["source"], hf_model=_twin(hf_model), tokenizer=_bridge_tokenizer(tokenizer), dtype=self.dtype
            )
        except Exception as exc:  # an unknown architecture (ValueError) or a config its adapter mis-reads
            raise TransformerLensUnsupported(type(exc).__name__) from exc
        missing = [
            f"blocks.{layer}.hook_resid_post"
            for layer in range(self.n_layers)
            if f"blocks.{layer}.hook_resid_post" not in self.bridge.hook_dict
        ]
        if missing:
            raise TransformerLensUnsupported(f"no hook {missing[0]}")
        self.bridge.eval()
        self._model = hf_model

    def _hf_model(self):
        return self._model

    def _capture(self, enc: Encoded, layers: list[int], pos: torch.Tensor) -> dict[int, torch.Tensor]:
        """Run blocks up to ``max(layers)`` and keep ``[batch, k, d]`` at each requested layer."""
        captured: dict[int, torch.Tensor] = {}
        last = max(layers)
        gather_index = pos.to(enc.input_ids.device).unsqueeze(-1)

        def make_hook(layer: int):
            def hook(tensor: torch.Tensor, hook) -> None:
                index = gather_index.expand(-1, -1, tensor.shape[-1])
                captured[layer] = tensor.gather(1, index)
                if layer == last:
                    raise _Stop

            return hook

        inputs = enc.model_inputs()
        with contextlib.suppress(_Stop):
            self.bridge.run_with_hooks(
                inputs.pop("input_ids"),
                fwd_hooks=[(f"blocks.{layer}.hook_resid_post", make_hook(layer)) for layer in sorted(set(layers))],
                **inputs,
            )
        return captured

    def residuals(self, enc, layers=None, positions=(-1,)):
        layers = self.check_layers(layers)
        with torch.no_grad():
            captured = self._capture(enc, layers, resolve_positions(positions, enc))
        return torch.stack([captured[layer] for layer in layers])

    def lens_reads(self, enc: Encoded, reads: Sequence[LensRead], layers=None, *, lens=None) -> list[LensReadout]:
        layers = self.check_layers(layers)
        plan = ReadPlan.of(reads, enc)
        with torch.no_grad():
            captured = self._capture(enc, layers, plan.columns.expand(enc.batch_size, -1))
            stacked = torch.stack([captured[layer] for layer in layers])
            translator = None if lens is None else lens.translator
            return plan.readouts(layers, stacked, self.unembed, self.vocab_size, translator)
