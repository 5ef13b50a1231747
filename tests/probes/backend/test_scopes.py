"""Parameter scopes and ``frozen_except`` (``probes/backend/scopes.py``): layer, module and group of
each parameter read from the module tree, and ``requires_grad`` flags restored exactly. The
architecture matrix checks the scopes of every tiny architecture on both backends
(``test_parameter_scopes_agree_between_backends_and_name_real_modules``)."""

from __future__ import annotations

import pytest
import torch

from probes.backend import BACKENDS, wrap
from probes.backend.base import Encoded
from tests.conftest import tiny_backend, tiny_hf_model, tiny_tokenizer
from tests.probes.backend.test_architecture_matrix import matrix_backend


def _where(scope) -> tuple[object, ...]:
    return scope.layer, scope.module, scope.group, scope.tensor, scope.role


def test_scopes_of_a_gemma3_model_name_layers_modules_and_groups():
    backend = tiny_backend("gemma3")
    scopes = backend.parameter_scopes()
    assert _where(scopes["model.layers.2.self_attn.q_proj.weight"]) == (
        2,
        "self_attn.q_proj",
        "q",
        "weight",
        "self_attn.q_proj",
    )
    assert _where(scopes["model.layers.1.mlp.down_proj.weight"])[:3] == (1, "mlp.down_proj", "down")
    assert _where(scopes["model.layers.0.self_attn.k_norm.weight"])[:3] == (0, "self_attn.k_norm", "norms")
    assert _where(scopes["model.layers.0.post_feedforward_layernorm.weight"])[:3] == (
        0,
        "post_feedforward_layernorm",
        "norms",
    )
    outside = {name: (s.group, s.block_index) for name, s in scopes.items() if s.layer is None}
    # Gemma ties its head to the embedding: one tensor, named and grouped as the embedding
    assert outside == {"model.embed_tokens.weight": ("embed", -1), "model.norm.weight": ("final_norm", -1)}
    assert sum(s.numel for s in scopes.values()) == sum(p.numel() for p in backend.named_parameters().values())
    assert {s.layer for s in scopes.values()} == {None, 0, 1, 2}


def test_a_bias_has_its_own_role_and_the_module_group():
    """Qwen2's projections carry biases: same module and group as the weight, role ``... .bias``."""
    scopes = matrix_backend("qwen2", "nnsight")[0].parameter_scopes()
    assert _where(scopes["model.layers.1.self_attn.q_proj.bias"]) == (
        1,
        "self_attn.q_proj",
        "q",
        "bias",
        "self_attn.q_proj.bias",
    )
    assert scopes["lm_head.weight"].group == "head"


def _flags(backend) -> dict[str, bool]:
    return {name: p.requires_grad for name, p in backend.named_parameters().items()}


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_frozen_except_trains_only_the_named_parameters_and_restores_every_flag(backend_name):
    backend = wrap(tiny_hf_model("llama"), tiny_tokenizer(), backend=backend_name)
    params = backend.named_parameters()
    frozen_before = "model.layers.0.mlp.up_proj.weight"
    params[frozen_before].requires_grad_(False)  # frozen before: trainable inside when named, frozen again after
    before = _flags(backend)
    keep = ["model.layers.1.self_attn.q_proj.weight", frozen_before]
    enc = backend.encode(["the cloud is white", "le nuage"])
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    with backend.frozen_except(keep):
        assert {n for n, p in params.items() if p.requires_grad} == set(keep)
        backend._loss(enc, labels).backward()
        assert {n for n, p in params.items() if p.grad is not None} == set(keep)  # autograd skipped the rest
    assert _flags(backend) == before
    with pytest.raises(RuntimeError, match="boom"), backend.frozen_except(keep[:1]):
        raise RuntimeError("boom")
    assert _flags(backend) == before
    with pytest.raises(KeyError, match="Hugging Face names"), backend.frozen_except(["model.layers.9.nope"]):
        pass
    assert _flags(backend) == before


def _inputs(backend) -> tuple[Encoded, torch.Tensor]:
    enc = backend.encode(["the cloud is white"])
    return enc, enc.input_ids.clone()


def test_frozen_except_nothing_freezes_the_whole_model():
    backend = tiny_backend("llama")
    with backend.frozen_except(()):
        assert not any(_flags(backend).values())
        assert not backend._loss(*_inputs(backend)).requires_grad
    assert all(_flags(backend).values())
