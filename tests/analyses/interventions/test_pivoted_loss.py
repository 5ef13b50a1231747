"""PROM's pivoted objective against its formula, the separate head, and the Fig. 2 comparison."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from analyses.interventions.pivoted_loss import PivotedObjective, PivotHead, pivoted_loss
from analyses.pipelines.interference import InterferenceSetup, fig2_comparison
from analyses.stats.interference import fig2_setting
from analyses.stats.prom_lambda import prom_layer
from probes.backend.store import ResultsStore
from probes.inputs.instruction_data import collate, load_instructions, pairs_for, tokenize_pairs
from tests import FIXTURES
from tests.conftest import tiny_backend, tiny_hf_model, tiny_tokenizer

FIXTURE = FIXTURES / "parallel_instructions.csv"


def _batch(lang: str, ids: list[str]) -> dict[str, torch.Tensor]:
    examples = tokenize_pairs(tiny_tokenizer(), pairs_for(load_instructions(FIXTURE), lang, ids))
    enc, labels = collate(examples, pad=0)
    return {**enc.model_inputs(), "labels": labels}


def _formula(model, target, pivot, layer, alpha, lam) -> torch.Tensor:
    """lam * L_{n,e} + L_{N,t} written out with plain transformers calls."""
    loss_t = model(**target).loss  # mean over scored (response) tokens at the output
    inputs = {k: v for k, v in pivot.items() if k != "labels"}
    hidden = model(**inputs, output_hidden_states=True).hidden_states[layer + 1]  # output of block `layer`
    logits = model.lm_head(model.model.norm(hidden))
    loss_e = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        pivot["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
        label_smoothing=alpha,
    )
    return lam * loss_e + loss_t


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_pivoted_loss_equals_its_formula(kind):
    model = tiny_hf_model(kind)
    target, pivot = _batch("fr", ["0", "1", "2"]), _batch("en", ["0", "1", "2"])
    objective = PivotedObjective(layer=1, alpha=0.1, lam=0.3)
    got = pivoted_loss(model, target, pivot, objective)
    want = _formula(model, target, pivot, 1, 0.1, 0.3)
    total, pivot_term, target_term = (float(t.detach()) for t in (got.total, got.pivot, got.target))
    assert total == pytest.approx(float(want.detach()), rel=1e-5)
    assert total == pytest.approx(0.3 * pivot_term + target_term, rel=1e-6)
    # the gradient too: same direction and size for every parameter
    got.total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    want.backward()
    for name, param in model.named_parameters():
        assert torch.allclose(grads[name], param.grad, atol=1e-6), name


def test_defaults_are_proms():
    objective = PivotedObjective()
    assert (objective.alpha, objective.lam) == (0.1, 0.1)
    assert objective.at(32) == 23 == prom_layer(32)  # n = 24 of 32 (1-based)
    assert objective.at(18) == 13
    assert PivotedObjective(layer=-1).at(18) == 17
    with pytest.raises(IndexError, match="blocks 0..17"):
        PivotedObjective(layer=18).at(18)


def test_lambda_zero_skips_the_pivot_batch():
    model = tiny_hf_model("llama")
    target = _batch("fr", ["3", "4"])
    out = pivoted_loss(model, target, {"input_ids": torch.zeros(1, 1, dtype=torch.long)}, PivotedObjective(lam=0.0))
    assert float(out.total) == pytest.approx(float(model(**target).loss), rel=1e-6) and float(out.pivot) == 0


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_separate_head_starts_equal_and_takes_the_pivot_gradient(kind):
    model = tiny_hf_model(kind)
    head = PivotHead(model)
    target, pivot = _batch("fr", ["0", "1"]), _batch("en", ["0", "1"])
    objective = PivotedObjective(layer=1)
    own, separate = (
        pivoted_loss(model, target, pivot, objective),
        pivoted_loss(model, target, pivot, objective, head=head),
    )
    assert float(own.total.detach()) == pytest.approx(float(separate.total.detach()), rel=1e-6)
    model.zero_grad()
    separate.pivot.backward()
    assert head.unembed.weight.grad.abs().max() > 0
    # gemma ties its head to the embedding: the copy must be a parameter of its own
    assert head.unembed.weight.data_ptr() != model.lm_head.weight.data_ptr()
    if not model.config.tie_word_embeddings:  # an untied model head gets nothing from L_{n,e} through a separate head
        assert model.lm_head.weight.grad is None


def test_fig2_comparison_has_three_settings_on_shared_batches(tmp_path):
    backend = tiny_backend("llama")
    table = fig2_comparison(
        backend,
        FIXTURE,
        "fr",
        "en",
        objective=PivotedObjective(layer=1),
        setup=InterferenceSetup(k=2, batch_size=3),
        store=ResultsStore(tmp_path),
        progress=False,
    )
    table["setting"] = fig2_setting(table)
    assert set(table["setting"]) == {"target only", "target + en", "pivoted"}
    per_setting = table[table["scope"] == "model"].set_index(["setting", "batch"])
    # batch B (the target batch) is the same in every setting: same loss
    for batch in (0, 1):
        losses = {per_setting.at[(s, batch), "loss_b"] for s in ("target only", "target + en", "pivoted")}
        assert max(losses) - min(losses) < 1e-6
    pivoted = table[(table["setting"] == "pivoted") & (table["module"] == "all")]
    assert (pivoted[pivoted["layer"] == 2]["norm_a"] == 0).all() and (
        pivoted[pivoted["layer"] <= 1]["norm_a"] > 0
    ).all()
    with pytest.raises(ValueError, match="independent"):
        fig2_comparison(backend, FIXTURE, "fr", setup=InterferenceSetup(pairing="parallel"))
