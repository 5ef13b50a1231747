"""FLOPs of a decoder forward pass and of early exit with a per-layer lens (the FLOPs tables of
AdaInfer, Fan et al. 2024).

Per block and sequence of ``s`` tokens, with the real projection shapes of the config
(``d_q = n_heads * head_dim``, ``d_kv = n_kv_heads * head_dim``; Gemma 3 has ``d_q != hidden``):

    2 * s * (h*d_q + 2*h*d_kv + d_q*h)     q, k, v, o projections (fused or not: the same products)
  + 2 * s * m * h * i * k                  MLP: m = 3 matrices gated (SwiGLU / GeGLU), 2 plain
                                           (GPT-2, GPT-NeoX, BLOOM, Falcon); k = 1 dense, the
                                           top-k routed experts of a mixture of experts
  + 2 * s * h * E                          the router of a mixture of E experts
  + 4 * s * c * d_q                        attention scores Q K^T and weights x V

where ``c = s`` for full attention and ``c = min(s, window)`` for sliding-window layers. With
multi-head attention (``d_q = d_kv = h``) and a gated MLP this is ``2*s*(4h^2 + 3h*i) + 4*s^2*h``.
Norms, activations, softmax and embeddings are not counted. The head is ``2 * h * V`` per
position: the model pays it once, at the answer position; AdaInfer pays it at every evaluated
layer to read the lens features (counted here), so exiting at the last layer costs more than
the plain forward pass.

The shape is read through the config's attribute API, so aliases (GPT-2's ``n_embd``,
``n_layer``) resolve. A config this model cannot count (shared experts, dense layers between MoE
layers) gives :class:`Uncounted`, whose FLOPs are NaN and whose ``reason`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probes.backend.errors import PivotlensError

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

# Model types whose MLP is two matrices (up, down) with no gate.
PLAIN_MLP = frozenset(
    {
        "gpt2",
        "gpt_neox",
        "bloom",
        "falcon",
        "opt",
        "gptj",
        "gpt_bigcode",
        "phi",
        "codegen",
        "persimmon",
        "starcoder2",
        "mpt",
        "xglm",
        "biogpt",
    }
)
# Config attributes of mixtures of experts whose layers this model does not count.
_UNCOUNTED_MOE = ("shared_expert_intermediate_size", "n_shared_experts", "first_k_dense_replace", "mlp_only_layers")


def _text_config(config: PreTrainedConfig | Mapping[str, Any]) -> PreTrainedConfig:
    """A ``transformers`` config (a dict is built into one); a multimodal config's text part."""
    if isinstance(config, Mapping):
        from transformers import AutoConfig

        config = dict(config.get("text_config") or config)
        config = AutoConfig.for_model(config.pop("model_type"), **config)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _kv_heads(config, heads: int) -> int:
    if config.model_type == "falcon":  # Falcon-7B multi-query; Falcon-40B/180B grouped
        return config.num_kv_heads if config.new_decoder_architecture else 1 if config.multi_query else heads
    return getattr(config, "num_key_value_heads", None) or heads


def _intermediate(config, hidden: int) -> int:
    for name in ("moe_intermediate_size", "intermediate_size", "n_inner", "ffn_hidden_size"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    return 4 * hidden  # GPT-2 (n_inner None), BLOOM


def _windows(config, n_layers: int) -> tuple[int | None, ...]:
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:  # Mistral, Mixtral, Phi-3: the window, when set, applies to every layer
        return (window,) * n_layers
    return tuple(window if kind == "sliding_attention" and window else None for kind in layer_types)


@dataclass(frozen=True)
class Uncounted:
    """A model whose FLOPs this module cannot count: every count is NaN, ``reason`` says why."""

    reason: str

    def block(self, s: int, layer: int) -> float:
        return math.nan

    def head(self) -> float:
        return math.nan

    def full(self, s: int) -> float:
        return math.nan

    def exit(self, s: int, stop_layer: int, lens_every_layer: bool = True) -> float:
        return math.nan


@dataclass(frozen=True)
class DecoderShape:
    """The dimensions of a decoder that set its FLOPs."""

    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    windows: tuple[int | None, ...]  # per layer: sliding-window length, None for full attention
    mlp_matrices: int = 3  # 3 gated (gate, up, down), 2 plain (up, down)
    active_experts: int = 1  # MLPs run per token: 1 dense, top-k of a mixture of experts
    n_experts: int = 0  # experts the router scores (0: dense)

    @classmethod
    def from_config(cls, config: PreTrainedConfig | Mapping[str, Any]) -> DecoderShape:
        """From a ``transformers`` config (or its dict); raises :class:`PivotlensError` naming
        what it cannot count."""
        config = _text_config(config)
        missing = [
            k
            for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")
            if getattr(config, k, None) is None
        ]
        if missing:
            raise PivotlensError(f"config of model type {config.model_type!r} lacks {missing}; FLOPs are not counted")
        if config.model_type not in PLAIN_MLP and not (
            getattr(config, "intermediate_size", None) or getattr(config, "moe_intermediate_size", None)
        ):
            raise PivotlensError(f"config of model type {config.model_type!r} lacks intermediate_size (the MLP width)")
        uncounted = [k for k in _UNCOUNTED_MOE if getattr(config, k, None)]
        if uncounted:
            raise PivotlensError(
                f"config of model type {config.model_type!r} has {uncounted}: shared or dense expert "
                "layers are not counted"
            )
        n_layers, hidden, heads = config.num_hidden_layers, config.hidden_size, config.num_attention_heads
        n_experts = next(
            (
                getattr(config, k)
                for k in ("num_local_experts", "num_experts", "n_routed_experts")
                if getattr(config, k, None)
            ),
            0,
        )
        return cls(
            n_layers=n_layers,
            hidden=hidden,
            intermediate=_intermediate(config, hidden),
            n_heads=heads,
            n_kv_heads=_kv_heads(config, heads),
            head_dim=getattr(config, "head_dim", None) or hidden // heads,
            vocab=config.vocab_size,
            windows=_windows(config, n_layers),
            mlp_matrices=2 if config.model_type in PLAIN_MLP else 3,
            active_experts=config.num_experts_per_tok if n_experts else 1,
            n_experts=n_experts,
        )

    def block(self, s: int, layer: int) -> float:
        """FLOPs of block ``layer`` over ``s`` tokens."""
        h, d_q, d_kv = self.hidden, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        window = self.windows[layer]
        context = s if window is None else min(s, window)
        mlp = 2 * s * self.mlp_matrices * h * self.intermediate * self.active_experts + 2 * s * h * self.n_experts
        return 2 * s * (h * d_q + 2 * h * d_kv + d_q * h) + mlp + 4 * s * context * d_q

    def head(self) -> float:
        """FLOPs of the unembedding at one position."""
        return 2 * self.hidden * self.vocab

    def full(self, s: int) -> float:
        """The plain forward pass: every block over ``s`` tokens and the head at the answer position."""
        return sum(self.block(s, layer) for layer in range(self.n_layers)) + self.head()

    def exit(self, s: int, stop_layer: int, lens_every_layer: bool = True) -> float:
        """Running blocks ``0..stop_layer`` and the head at each of them (or only at the exit layer)."""
        if not 0 <= stop_layer < self.n_layers:
            raise ValueError(f"stop_layer {stop_layer} is outside 0..{self.n_layers - 1}")
        heads = stop_layer + 1 if lens_every_layer else 1
        return sum(self.block(s, layer) for layer in range(stop_layer + 1)) + heads * self.head()


def flops_model(config: PreTrainedConfig | Mapping[str, Any]) -> DecoderShape | Uncounted:
    """The FLOPs model of a config, or :class:`Uncounted` with the reason it cannot be counted."""
    try:
        return DecoderShape.from_config(config)
    except PivotlensError as exc:
        return Uncounted(str(exc))
