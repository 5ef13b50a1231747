"""Lenses in the Backend: the logit lens unchanged, fitted translators, the cache and its refusals."""

from __future__ import annotations

import pytest
import torch

from probes.backend import LensRequest
from probes.backend.lens_fit import Moments, TooFewTokensError, activations, fit_linear, fit_tuned, layer_kl
from probes.backend.lenses import (
    LOGIT,
    Lens,
    LensMismatchError,
    LensNotFittedError,
    identity_lens,
    load_lens,
    save_lens,
)
from tests.conftest import tiny_backend, tiny_tokenizer

PROMPTS = ["the cloud is", "le nuage est blanc et la", "облако"]
REQUEST = LensRequest(
    token_ids=torch.tensor([[5, 6], [7, -1], [8, 9]]), rank_group=torch.ones(3, 2, dtype=torch.bool), top_k=3
)


def _rows(n_rows: int = 40, length: int = 30, seed: int = 0) -> list[list[int]]:
    """Random token rows: distinct activations at every position (the tiny corpus repeats itself)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, len(tiny_tokenizer()), (n_rows, length), generator=generator).tolist()


@pytest.mark.parametrize("name", ["transformer-lens", "nnsight"])
def test_logit_lens_through_the_lens_object_is_the_old_path_exactly(name):
    backend = tiny_backend("gemma2", backend=name)
    enc = backend.encode(PROMPTS)
    old = backend.lens(enc, REQUEST)
    new = backend.lens(enc, REQUEST, lens=LOGIT)
    eye = backend.lens(enc, REQUEST, lens=identity_lens("tuned", "eye", backend.n_layers, backend.d_model))
    for out in (new, eye):
        for field in ("entropy_bits", "probs_at_ids", "group_rank", "top_ids", "top_probs"):
            assert torch.equal(getattr(old, field), getattr(out, field)), field
    direct = torch.softmax(backend.unembed(backend.residuals(enc)), -1)[..., 5]
    assert torch.allclose(old.probs_at_ids[:, 0, 0, 0], direct[:, 0, 0], atol=1e-6)


def test_a_translator_changes_the_reading_the_same_way_on_both_backends():
    tl, nn = tiny_backend("llama"), tiny_backend("llama", backend="nnsight")
    torch.manual_seed(1)
    lens = Lens("linear", "random", torch.eye(64) + 0.1 * torch.randn(3, 64, 64), torch.randn(3, 64))
    enc = tl.encode(PROMPTS)
    a, b = tl.lens(enc, REQUEST, lens=lens), nn.lens(enc, REQUEST, lens=lens)
    assert torch.allclose(a.probs_at_ids, b.probs_at_ids, atol=1e-5)
    translated = lens.translate([0, 1, 2], tl.residuals(enc))
    direct = torch.softmax(tl.unembed(translated), -1)[..., 7]
    assert torch.allclose(a.probs_at_ids[:, 1, 0, 0], direct[:, 1, 0], atol=1e-6)
    assert not torch.allclose(a.probs_at_ids, tl.lens(enc, REQUEST).probs_at_ids, atol=1e-3)
    remote = tiny_backend("llama", backend="nnsight", remote="local")  # nnsight's serialised round-trip
    assert torch.allclose(remote.lens(enc, REQUEST, lens=lens).probs_at_ids, b.probs_at_ids, atol=1e-6)


def test_closed_form_fit_equals_lstsq_on_the_same_activations():
    backend = tiny_backend("llama")
    rows = _rows()
    lens = fit_linear(backend, rows, progress=False)
    acts = torch.cat(list(activations(backend, rows, progress=False)), dim=1).double()
    z = torch.cat([acts, torch.ones(*acts.shape[:2], 1, dtype=torch.float64)], -1)
    for layer in range(backend.n_layers - 1):
        solution = torch.linalg.lstsq(z[layer], acts[-1]).solution  # [d+1, d]
        assert torch.allclose(lens.weight[layer].double(), solution[:-1].T, atol=1e-4), layer
        assert torch.allclose(lens.bias[layer].double(), solution[-1], atol=1e-4), layer
    assert torch.equal(lens.weight[-1], torch.eye(backend.d_model))
    assert lens.record["tokens"] == acts.shape[1] and all(0 < r <= 1 for r in lens.record["metrics"]["r2_per_layer"])


def test_moments_stream_in_any_batching():
    torch.manual_seed(0)
    acts = torch.randn(3, 500, 8)
    whole, parts = Moments.empty(3, 8), Moments.empty(3, 8)
    whole.add(acts)
    for chunk in acts.split(70, dim=1):
        parts.add(chunk)
    assert torch.allclose(whole.solve()[0], parts.solve()[0], atol=1e-5)


def test_tuned_lens_from_identity_lowers_kl_on_its_training_text_and_is_deterministic():
    backend = tiny_backend("llama")
    rows = _rows(10)
    lens = fit_tuned(backend, rows, steps=30, tokens_per_step=64, lr=1e-2, seed=3, progress=False)
    before, after = lens.record["metrics"]["train_kl_bits_before"], lens.record["metrics"]["train_kl_bits_after"]
    assert all(a < b for a, b in zip(after[:-1], before[:-1])), (before, after)
    assert after[-1] == pytest.approx(0, abs=1e-5)
    again = fit_tuned(backend, rows, steps=30, tokens_per_step=64, lr=1e-2, seed=3, progress=False)
    assert torch.equal(lens.weight, again.weight)
    acts = torch.cat(list(activations(backend, rows, progress=False)), dim=1)
    assert torch.allclose(layer_kl(backend, lens, acts[:, :256]), torch.tensor(after, dtype=torch.float64), atol=1e-6)
    assert all(p.requires_grad for p in backend.named_parameters().values())  # model left as it was


def test_too_few_tokens_is_refused_with_the_count_needed():
    backend = tiny_backend("llama")
    with pytest.raises(TooFewTokensError, match="gives 580 fitting tokens; .* needs at least 640"):
        fit_linear(backend, _rows(20), progress=False)


def test_saved_lens_loads_by_name_and_refuses_other_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PIVOTLENS_CACHE", str(tmp_path))
    backend = tiny_backend("llama")
    with pytest.raises(LensNotFittedError, match="pivotlens --model tiny-llama fit-lens --kind linear --langs en"):
        load_lens(backend, "linear-en")
    lens = fit_linear(backend, _rows(), name="linear-en", progress=False)
    path = save_lens(lens, backend.weights_hash)
    loaded = load_lens(backend, "linear-en")
    assert torch.equal(loaded.weight, lens.weight) and loaded.fit_id == lens.fit_id and len(loaded.fit_id) == 16
    assert loaded.key() == {"lens": "linear-en", "lens_fit": lens.fit_id} != LOGIT.key()
    other = tiny_backend("llama")
    other.weights_hash = "files-sha256:other"
    with pytest.raises(LensMismatchError, match="files-sha256:other") as err:
        load_lens(other, path)
    assert backend.weights_hash in str(err.value)
