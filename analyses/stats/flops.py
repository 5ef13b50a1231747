"""FLOPs of a decoder forward pass and of early exit with a per-layer lens (spec section 5).

Per block and sequence of ``s`` tokens, with the real projection shapes of the config
(``d_q = n_heads * head_dim``, ``d_kv = n_kv_heads * head_dim``; Gemma 3 has ``d_q != hidden``):

    2 * s * (h*d_q + 2*h*d_kv + d_q*h)     q, k, v, o projections
  + 2 * s * 3 * h * i                      gated MLP (SwiGLU / GeGLU: gate, up, down)
  + 4 * s * c * d_q                        attention scores Q K^T and weights x V

where ``c = s`` for full attention and ``c = min(s, window)`` for sliding-window layers. With
multi-head attention (``d_q = d_kv = h``) this is the spec's ``2*s*(4h^2 + 3h*i) + 4*s^2*h``.
Norms, activations, softmax and embeddings are not counted. The head is ``2 * h * V`` per
position: the model pays it once, at the answer position; AdaInfer pays it at every evaluated
layer to read the lens features (counted here), so exiting at the last layer costs more than
the plain forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from probes.backend.errors import PivotlensError


@dataclass(frozen=True)
class DecoderShape:
    """The dimensions of a gated-MLP decoder (Llama, Gemma, Mistral, Qwen) that set its FLOPs."""

    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    windows: tuple[int | None, ...]  # per layer: sliding-window length, None for full attention

    @classmethod
    def from_config(cls, config: object) -> DecoderShape:
        """From a ``transformers`` config (or its dict); a multimodal config's ``text_config`` is used."""
        if not isinstance(config, Mapping):
            config = config.to_dict()
        config = config.get("text_config") or config
        missing = [k for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")
                   if config.get(k) is None]
        if missing:
            raise PivotlensError(
                f"config of model type {config.get('model_type')!r} lacks {missing}; FLOPs are counted for gated-MLP "
                "decoders with Llama-style config names (Llama, Gemma, Mistral, Qwen)"
            )
        n_layers, hidden, heads = config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]
        window = config.get("sliding_window")
        layer_types = config.get("layer_types") or ["full_attention"] * n_layers
        windows = tuple(window if kind == "sliding_attention" and window else None for kind in layer_types)
        return cls(
            n_layers=n_layers,
            hidden=hidden,
            intermediate=config["intermediate_size"],
            n_heads=heads,
            n_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            vocab=config["vocab_size"],
            windows=windows,
        )

    def block(self, s: int, layer: int) -> float:
        """FLOPs of block ``layer`` over ``s`` tokens."""
        h, d_q, d_kv = self.hidden, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        window = self.windows[layer]
        context = s if window is None else min(s, window)
        return 2 * s * (h * d_q + 2 * h * d_kv + d_q * h) + 2 * s * 3 * h * self.intermediate + 4 * s * context * d_q

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
