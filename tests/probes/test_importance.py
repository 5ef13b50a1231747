"""Taylor importance (Zhang et al. 2024, Eq. 4) against finite differences of the loss
and plain-torch gradients of an independent copy of the model."""

from __future__ import annotations

import pytest
import torch

from probes.backend import wrap
from probes.backend.store import ResultsStore
from probes.importance import (
    IMPORTANCE_COLUMNS,
    accumulate_importance,
    load_importance,
    run_importance,
    scope_names,
)
from probes.inputs.lm_corpus import lm_batches
from tests.conftest import CORPUS, embedded, tiny_backend, tiny_hf_model, tiny_tokenizer

# Float64 needs batches without padding (transformers' eager mask turns padded rows into NaN in
# float64), so every sentence is its own batch there.
TEXTS = ["the cloud is white and the river is long", "le nuage est blanc", "облако белое и река длинная"]


def _backend64(backend: str = "transformer-lens"):
    return wrap(tiny_hf_model("llama").double(), tiny_tokenizer(), backend=backend, model_name="tiny-llama64")


def _batch_losses(model, batches) -> float:
    """Sum over batches of each batch's mean next-token loss, by plain transformers (independent)."""
    total = 0.0
    with torch.no_grad():
        for batch in batches:
            logits = model(**batch.enc.model_inputs()).logits
            total += float(
                torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1), ignore_index=-100
                )
            )
    return total


def _signed(model, batches) -> dict[str, torch.Tensor]:
    """theta * sum_b grad L_b by plain torch autograd on an independent copy of the model."""
    params = dict(model.named_parameters())
    model.zero_grad()
    for batch in batches:
        logits = model(**batch.enc.model_inputs()).logits
        torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1), ignore_index=-100
        ).backward()
    return {n: (p.detach() * p.grad).clone() for n, p in params.items() if p.grad is not None}


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_importance_equals_the_central_difference_of_the_summed_loss(backend_name):
    """|theta_i * d/dtheta_i sum_b L_b| is the derivative of the summed loss along theta_i's own
    direction: (F(theta_i (1 + h)) - F(theta_i (1 - h))) / 2h, by an independent forward pass."""
    backend = _backend64(backend_name)
    imap = accumulate_importance(backend, TEXTS, group_size=1, batch_size=1, max_tokens=32, progress=False)
    reference = tiny_hf_model("llama").double()
    batches = list(lm_batches(backend, TEXTS, batch_size=1, max_tokens=32))
    params = dict(reference.named_parameters())
    h = 1e-2  # eager attention's softmax runs in float32, so steps much smaller than this are noise
    checked = 0
    for name in (
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.2.mlp.down_proj.weight",
        "model.layers.1.input_layernorm.weight",
    ):
        for flat_index in imap.importance[name].reshape(-1).topk(2).indices.tolist():
            entry = params[name].data.view(-1)
            theta = float(entry[flat_index])
            entry[flat_index] = theta * (1 + h)
            up = _batch_losses(reference, batches)
            entry[flat_index] = theta * (1 - h)
            down = _batch_losses(reference, batches)
            entry[flat_index] = theta
            finite = abs(up - down) / (2 * h)
            assert float(imap.importance[name].view(-1)[flat_index]) == pytest.approx(finite, rel=1e-3)
            checked += 1
    assert checked == 6


def test_importance_predicts_zeroing_a_small_entry():
    """Eq. 2-4: for an entry with a small value, L(theta) - L(theta with the entry zeroed) is its
    first-order term theta_i * g_i (the paper's motivation for the Taylor estimate)."""
    backend = _backend64()
    imap = accumulate_importance(backend, TEXTS, group_size=1, batch_size=1, max_tokens=32, progress=False)
    reference = tiny_hf_model("llama").double()
    batches = list(lm_batches(backend, TEXTS, batch_size=1, max_tokens=32))
    signed = _signed(tiny_hf_model("llama").double(), batches)
    base = _batch_losses(reference, batches)
    name = "model.layers.1.mlp.up_proj.weight"
    entry = dict(reference.named_parameters())[name].data.view(-1)
    important = imap.importance[name].reshape(-1) > imap.importance[name].median()
    smallest = torch.where(important, entry.abs(), torch.full_like(entry, float("inf"))).topk(3, largest=False).indices
    for flat_index in smallest.tolist():
        theta = float(entry[flat_index])
        entry[flat_index] = 0.0
        delta = base - _batch_losses(reference, batches)
        entry[flat_index] = theta
        first_order = float(signed[name].view(-1)[flat_index])
        assert delta == pytest.approx(first_order, rel=0.02, abs=1e-10)
        assert float(imap.importance[name].view(-1)[flat_index]) == pytest.approx(abs(first_order), rel=1e-6)


def test_sum_then_abs_and_abs_per_batch_follow_their_definitions():
    """sum_then_abs = |theta * sum_g grad_g|, abs_per_batch = sum_g |theta * grad_g| over groups of
    2 sentences (computed in batches of 4 and of 1); both against plain-torch gradients of an
    independent copy, one padded float32 batch per group."""
    backend = wrap(tiny_hf_model("llama"), tiny_tokenizer(), backend="transformer-lens")
    texts = TEXTS * 2
    batches = [
        b for s in range(0, len(texts), 2) for b in lm_batches(backend, texts[s : s + 2], batch_size=2, max_tokens=32)
    ]
    assert len(batches) == 3 and any((b.enc.attention_mask == 0).any() for b in batches)  # groups of 2 sentences
    after_sum = accumulate_importance(backend, texts, group_size=2, batch_size=4, max_tokens=32, progress=False)
    per_batch = accumulate_importance(
        backend, texts, group_size=2, batch_size=1, max_tokens=32, mode="abs_per_batch", progress=False
    )
    expected_sum = _signed(tiny_hf_model("llama"), batches)
    per_batch_signed = [_signed(tiny_hf_model("llama"), [b]) for b in batches]
    expected_per_batch = {n: sum(signed[n].abs() for signed in per_batch_signed) for n in expected_sum}
    for name in after_sum.importance:
        torch.testing.assert_close(after_sum.importance[name], expected_sum[name].abs(), rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(per_batch.importance[name], expected_per_batch[name], rtol=1e-4, atol=1e-9)
    # the triangle inequality: the absolute value after the sum never exceeds the sum of absolutes
    assert all(
        bool((after_sum.importance[n] <= per_batch.importance[n] * (1 + 1e-5) + 1e-9).all())
        for n in after_sum.importance
    )
    assert any(bool((after_sum.importance[n] < per_batch.importance[n] - 1e-7).any()) for n in after_sum.importance)


def test_scope_layers_keeps_block_parameters_and_norms_and_restores_requires_grad():
    backend = wrap(tiny_hf_model("gemma3"), tiny_tokenizer(), backend="transformer-lens")
    layers, everything = scope_names(backend, "layers"), scope_names(backend, "all")
    assert all(n.startswith("model.layers.") for n in layers)
    assert any(n.endswith("input_layernorm.weight") for n in layers) and any("q_norm" in n for n in layers)
    assert set(everything) - set(layers) >= {"model.embed_tokens.weight", "model.norm.weight"}
    imap = accumulate_importance(backend, TEXTS, batch_size=2, progress=False)
    assert set(imap.importance) == set(layers)
    assert all(p.requires_grad for p in backend.named_parameters().values())
    assert all(p.grad is None for p in backend.named_parameters().values())
    with pytest.raises(ValueError, match="scope must be"):
        scope_names(backend, "blocks")  # type: ignore[arg-type]


def test_store_writes_float32_maps_with_provenance_and_reuses_them(tmp_path, monkeypatch):
    backend = wrap(tiny_hf_model("llama"), tiny_tokenizer(), backend="transformer-lens", model_name="tiny")
    texts = {"en": TEXTS[:1] * 3, "ru": TEXTS[2:] * 3}
    store = ResultsStore(tmp_path)
    table = run_importance(backend, texts, batch_size=2, store=store, progress=False)
    assert list(table.columns) == list(IMPORTANCE_COLUMNS) and set(table["lang"]) == {"en", "ru"}
    memory = accumulate_importance(backend, texts["ru"], batch_size=2, progress=False)
    stored = load_importance(table.attrs["files"]["ru"])
    for name, values in memory.importance.items():
        torch.testing.assert_close(
            stored.importance[name], values, rtol=0, atol=0
        )  # full precision: regions select from it
    ru = table[table["lang"] == "ru"].set_index("param")
    for name, values in memory.importance.items():
        assert ru.loc[name, "importance_sum"] == pytest.approx(float(values.double().sum()), rel=1e-5)
        assert ru.loc[name, "numel"] == values.numel()
    from safetensors import safe_open

    with safe_open(str(table.attrs["files"]["en"]), framework="pt") as handle:
        assert '"probe": "importance"' in handle.metadata()["provenance"]
        assert handle.get_tensor(next(iter(handle.keys()))).dtype == torch.float32

    def fail(*args, **kwargs):
        raise AssertionError("a finished language must be read back, not recomputed")

    monkeypatch.setattr("probes.importance.accumulate_importance", fail)
    again = run_importance(backend, texts, batch_size=2, store=store, progress=False)
    assert len(again) == len(table) and set(again.attrs["files"]) == {"en", "ru"}


def test_bad_options_fail_clearly():
    backend = wrap(tiny_hf_model("llama"), tiny_tokenizer(), backend="transformer-lens")
    with pytest.raises(ValueError, match="mode must be"):
        accumulate_importance(backend, TEXTS, mode="abs", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nothing to accumulate"):
        accumulate_importance(backend, ["a"], progress=False)


@pytest.mark.slow
def test_removing_the_top_region_hurts_far_more_than_a_random_one_on_the_real_model():
    """Zhang et al. Table 1 on the default model: zero the top 1 % (per tensor) of the English
    importance, and a random 1 %; the top region must raise perplexity far more."""
    from analyses.interventions.regions import region_removed
    from analyses.stats.regions import select
    from probes.inputs.lm_corpus import load_corpus
    from probes.perplexity import language_perplexity

    backend = embedded("gemma-3-270m")
    corpus = load_corpus()
    imap = accumulate_importance(
        backend, corpus.texts("en", "accumulation")[:8], batch_size=8, max_tokens=32, progress=False
    )
    heldout = corpus.texts("en", "heldout")[:8]
    base = language_perplexity(backend, heldout, max_tokens=32)["perplexity"]
    measured = {}
    for selection in ("top", "random"):
        with region_removed(backend.named_parameters(), select(imap.importance, 0.01, selection, seed=0)):
            measured[selection] = language_perplexity(backend, heldout, max_tokens=32)["perplexity"]
    assert language_perplexity(backend, heldout, max_tokens=32)["perplexity"] == pytest.approx(
        base, rel=1e-6
    )  # restored
    assert measured["top"] > 10 * base
    assert measured["random"] < 2 * base
    assert (measured["top"] - base) > 20 * abs(measured["random"] - base)


@pytest.mark.parametrize("mode", ["sum_then_abs", "abs_per_batch"])
def test_the_compute_batch_does_not_change_the_map(mode):
    """Batches of 1, 8 and 16 sentences give the same map: only the grouping (here 12
    sentences per group, so 30 sentences make groups of 12, 12 and 6) is in the definition."""
    backend = tiny_backend("llama")
    texts = [f"{line} {n}" for n, line in enumerate(CORPUS[:30])]
    maps = [
        accumulate_importance(backend, texts, mode=mode, group_size=12, batch_size=b, progress=False)
        for b in (1, 8, 16)
    ]
    for other in maps[1:]:
        assert other.mean_loss == pytest.approx(maps[0].mean_loss, rel=1e-5)
        for name, values in maps[0].importance.items():
            torch.testing.assert_close(other.importance[name], values, rtol=1e-4, atol=1e-7)
    coarser = accumulate_importance(backend, texts, mode=mode, group_size=30, batch_size=8, progress=False)
    name = next(iter(coarser.importance))
    assert not torch.allclose(coarser.importance[name], maps[0].importance[name], rtol=1e-3)  # the grouping matters
