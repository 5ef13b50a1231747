"""``add_loss_grads``: the gradient sum over batches equals the sum of ``loss_and_grads`` copies."""

from __future__ import annotations

import pytest
import torch

from probes.backend.grad_sum import add_loss_grads
from probes.inputs.lm_corpus import lm_batches
from tests.conftest import CORPUS, tiny_backend

NAMES = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.2.input_layernorm.weight",
]


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_sum_equals_the_sum_of_loss_and_grads_copies(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    batches = list(lm_batches(backend, CORPUS[:6], batch_size=3, max_tokens=16))
    params = backend.named_parameters()
    total = {n: torch.zeros_like(params[n]) for n in NAMES}
    expected = {n: torch.zeros_like(params[n]) for n in NAMES}
    for batch in batches:
        loss, n_tokens = add_loss_grads(backend, batch.enc, batch.labels, total)
        reference = backend.loss_and_grads(batch.enc, batch.labels, params=NAMES)
        assert loss == pytest.approx(reference.loss) and n_tokens == reference.n_tokens
        for n in NAMES:
            expected[n] += reference.grads[n]
    for n in NAMES:
        torch.testing.assert_close(total[n], expected[n], rtol=1e-6, atol=1e-9)
    assert all(p.grad is None for p in params.values())


def test_transform_is_applied_before_adding_and_bad_names_fail():
    backend = tiny_backend("llama")
    batch = next(lm_batches(backend, CORPUS[:2], batch_size=2, max_tokens=16))
    params = backend.named_parameters()
    plain = {NAMES[0]: torch.zeros_like(params[NAMES[0]])}
    squared = {NAMES[0]: torch.zeros_like(params[NAMES[0]])}
    add_loss_grads(backend, batch.enc, batch.labels, plain)
    add_loss_grads(backend, batch.enc, batch.labels, squared, lambda name, grad: grad.pow_(2))
    torch.testing.assert_close(squared[NAMES[0]], plain[NAMES[0]] ** 2)
    with pytest.raises(KeyError, match="unknown or frozen"):
        add_loss_grads(backend, batch.enc, batch.labels, {"nope": torch.zeros(1)})
