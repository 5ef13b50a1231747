"""Cached generation on a transformer-lens-bridged model equals plain Hugging Face generation
(transformers >= 5.2x passes the KV cache as ``cache``, see probes/backend/tl_compat.py)."""

from __future__ import annotations

import torch

from tests.conftest import tiny_backend, tiny_hf_model

PROMPTS = ["the cloud is", "le nuage est blanc et la"]


def test_bridged_generation_uses_the_kv_cache(tiny_kind):
    backend = tiny_backend(tiny_kind)  # transformer-lens
    reference = tiny_hf_model(tiny_kind)
    enc = backend.encode(PROMPTS)
    generated = backend.generate(enc, max_new_tokens=8).new_ids
    with torch.no_grad():
        expected = reference.generate(
            **enc.model_inputs(), max_new_tokens=8, do_sample=False, pad_token_id=backend.pad_id
        )[:, enc.input_ids.shape[1] :]
        no_cache = backend._hf_model().generate(
            **enc.model_inputs(), max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=backend.pad_id
        )
    assert torch.equal(generated, expected)
    assert torch.equal(generated, no_cache[:, enc.input_ids.shape[1] :])
