"""transformer-lens 4 backend: a ``TransformerBridge`` over the Hugging Face model.

The bridge rewires the model it is given in place (parameter names gain
``._original_component.``), so it must own its copy of the model.
"""

from __future__ import annotations

import copy

import torch

from probes.backend.base import (
    Backend,
    Encoded,
    LensReadout,
    LensRequest,
    lm_loss,
    readout_layers,
    resolve_positions,
)


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


def _hf_name(bridge_name: str) -> str:
    return bridge_name.replace("._original_component", "")


class TransformerLensBackend(Backend):
    """Backend on transformer-lens 4's ``TransformerBridge`` (hook ``blocks.{l}.hook_resid_post``)."""

    name = "transformer-lens"

    def __init__(self, hf_model, tokenizer, **info: str) -> None:
        from transformer_lens.model_bridge import TransformerBridge

        from probes.backend.tl_compat import patch_kv_cache_argument

        patch_kv_cache_argument()  # else cached generation on the bridged model ignores the prompt
        super().__init__(hf_model, tokenizer, **info)
        self.bridge = TransformerBridge.boot_transformers(
            info["source"], hf_model=hf_model, tokenizer=_bridge_tokenizer(tokenizer), dtype=self.dtype
        )
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

        hooks = [(f"blocks.{layer}.hook_resid_post", make_hook(layer)) for layer in sorted(set(layers))]
        try:
            self.bridge.run_with_hooks(
                enc.input_ids,
                fwd_hooks=hooks,
                attention_mask=enc.attention_mask,
                position_ids=enc.position_ids,
            )
        except _Stop:
            pass
        return captured

    def residuals(self, enc, layers=None, positions=(-1,)):
        layers = self.check_layers(layers)
        with torch.no_grad():
            captured = self._capture(enc, layers, resolve_positions(positions, enc))
        return torch.stack([captured[layer] for layer in layers])

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        return self.parts.softcap(self.bridge.unembed(self.bridge.ln_final(resid)))

    def lens(self, enc: Encoded, request: LensRequest, layers=None, positions=(-1,), *, lens=None) -> LensReadout:
        layers = self.check_layers(layers)
        with torch.no_grad():
            captured = self._capture(enc, layers, resolve_positions(positions, enc))
            stacked = torch.stack([captured[layer] for layer in layers])
            return readout_layers(
                layers,
                stacked,
                self.unembed,
                request,
                self.vocab_size,
                translator=None if lens is None else lens.translator,
            )

    def named_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {_hf_name(n): p for n, p in self.bridge.named_parameters()}

    def _loss(self, enc: Encoded, labels: torch.Tensor) -> torch.Tensor:
        logits = self.bridge(
            enc.input_ids, attention_mask=enc.attention_mask, position_ids=enc.position_ids, return_type="logits"
        )
        return lm_loss(logits, labels)
