"""Compatibility shim between transformer-lens 4.3 and transformers >= 5.2x.

transformers renamed the decoder layers' KV-cache argument from ``past_key_values`` to
``cache``. transformer-lens' attention bridges still look for ``past_key_values`` (or
``layer_past``), find nothing, and never extend K/V with the cached positions: every cached
decoding step then attends to itself alone, and ``generate`` on a bridged model degenerates
(``" Le Le Le ..."``). :func:`patch_kv_cache_argument` teaches the bridges the new name.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


def patch_kv_cache_argument() -> None:
    """Make ``AttentionBridge._update_kv_cache`` accept the cache under the name ``cache`` (idempotent)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    original = AttentionBridge._update_kv_cache
    if getattr(original, "_pivotlens_cache_alias", False):
        return

    @functools.wraps(original)
    def update(self, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if (
            kwargs.get("past_key_values") is None
            and kwargs.get("layer_past") is None
            and kwargs.get("cache") is not None
        ):
            kwargs["past_key_values"] = kwargs["cache"]
        return original(self, k, v, **kwargs)

    update._pivotlens_cache_alias = True  # type: ignore[attr-defined]
    AttentionBridge._update_kv_cache = update
