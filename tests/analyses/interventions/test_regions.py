"""Region removal and freeze-by-restore (``analyses/interventions/regions.py``; Zhang et al. 2024,
spec 4.3) on tiny models: exact restores, the freeze holding through real optimizer steps (a
plain loop and the fine-tuning driver's Trainer), and modified model folders the loader takes."""

from __future__ import annotations

import pytest
import torch

from analyses.interventions.regions import (
    RegionFreeze,
    RegionFreezeCallback,
    apply_region,
    region_removed,
    restore,
    write_modified_model,
)
from analyses.stats.regions import select
from probes.backend import load
from probes.backend.base import encode_ids
from probes.inputs.lm_corpus import next_token_labels
from probes.perplexity import language_perplexity
from tests.conftest import CORPUS, tiny_hf_model, tiny_tokenizer


def _params(model) -> dict[str, torch.nn.Parameter]:
    return dict(model.named_parameters())


def _region(model, fraction: float = 0.1, seed: int = 0):
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n.startswith("model.layers.")}
    return select(scores, fraction, "random", seed=seed)


@pytest.mark.parametrize("how", ["zero", "reset", "perturb", "scale"])
def test_apply_region_changes_exactly_the_region_and_restore_undoes_it(how):
    model = tiny_hf_model("llama")
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = _region(model)
    options = {"values": 0.5} if how == "reset" else {"factor": 3.0} if how == "scale" else {}
    saved = apply_region(_params(model), masks, how, seed=1, **options)
    for name, param in model.named_parameters():
        if name not in masks:
            assert torch.equal(param, original[name])
            continue
        mask = masks[name]
        assert torch.equal(param[~mask], original[name][~mask])
        changed = param[mask]
        if how == "zero":
            assert (changed == 0).all()
        elif how == "reset":
            assert (changed == 0.5).all()
        elif how == "scale":
            torch.testing.assert_close(changed, original[name][mask] * 3.0)
        elif mask.sum() > 20:
            assert not torch.allclose(changed, original[name][mask])
            assert float(changed.detach().std()) == pytest.approx(float(original[name].std()), rel=0.5)
    restore(_params(model), masks, saved)
    assert all(torch.equal(p, original[n]) for n, p in model.named_parameters())


def test_reset_to_another_checkpoint_copies_its_values():
    model, other = tiny_hf_model("llama", seed=0), tiny_hf_model("llama", seed=1)
    masks = _region(model)
    apply_region(_params(model), masks, "reset", values={n: p.detach() for n, p in other.named_parameters()})
    name = "model.layers.1.mlp.up_proj.weight"
    assert torch.equal(_params(model)[name][masks[name]], _params(other)[name][masks[name]])


def test_region_removed_restores_even_after_an_error():
    model = tiny_hf_model("llama")
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"), region_removed(_params(model), _region(model)):
        raise RuntimeError("boom")
    assert all(torch.equal(p, original[n]) for n, p in model.named_parameters())


def test_bad_masks_fail_clearly():
    model = tiny_hf_model("llama")
    with pytest.raises(KeyError, match="Hugging Face names"):
        apply_region(_params(model), {"layers.0.q.weight": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        apply_region(_params(model), {"model.layers.0.self_attn.q_proj.weight": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="needs values"):
        apply_region(_params(model), _region(model), "reset")


def _train(model, steps: int, freeze: RegionFreeze | None) -> None:
    """A user's own loop: AdamW steps on the language-model loss, restoring after each step."""
    enc = encode_ids([tiny_tokenizer()(text)["input_ids"][:16] for text in CORPUS[:4]], 0)
    labels = next_token_labels(enc)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(**enc.model_inputs()).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if freeze is not None:
            freeze.restore()
    model.eval()


@pytest.mark.parametrize("at_zero", [False, True])
def test_freeze_by_restore_holds_the_region_through_optimizer_steps(at_zero):
    model = tiny_hf_model("llama")
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = _region(model, 0.2)
    freeze = RegionFreeze(_params(model), masks, at_zero=at_zero)
    freeze.restore()  # before training, as the reference does
    _train(model, 3, freeze)
    norm = "model.layers.0.input_layernorm.weight"
    for name, param in model.named_parameters():
        if name not in masks or "norm" in name:
            continue
        expected = torch.zeros_like(param[masks[name]]) if at_zero else original[name][masks[name]]
        assert torch.equal(param[masks[name]], expected)
        assert not torch.equal(param[~masks[name]], original[name][~masks[name]])  # the rest trains
    assert not torch.equal(_params(model)[norm][masks[norm]], original[norm][masks[norm]])  # norms left free
    assert freeze.n_entries == sum(int(m.sum()) for n, m in masks.items() if "norm" not in n)


def test_freeze_callback_holds_the_region_in_the_finetuning_driver(tiny_model_folder, tmp_path):
    from analyses.interventions.finetune import Example, FinetuneConfig, finetune

    model = tiny_hf_model("llama")
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = _region(model, 0.2)
    examples = [Example(text[:10], text[10:]) for text in CORPUS[:8]]
    config = FinetuneConfig(
        method="full", template="plain", max_steps=3, batch_size=4, learning_rate=1e-2, logging_steps=1, save_steps=100
    )
    results = {}
    for label, callbacks in (("free", []), ("frozen", [RegionFreezeCallback(masks)])):
        out = finetune(tiny_model_folder, examples, tmp_path / label, config, callbacks=callbacks, progress=False)
        results[label] = _params(load(out.model_dir, backend="nnsight")._hf_model())
    name = "model.layers.1.self_attn.o_proj.weight"
    assert torch.equal(results["frozen"][name][masks[name]], original[name][masks[name]])
    assert not torch.equal(results["frozen"][name][~masks[name]], original[name][~masks[name]])
    assert not torch.equal(results["free"][name][masks[name]], original[name][masks[name]])


def test_write_modified_model_gives_a_folder_the_loader_takes(tiny_model_folder, tmp_path):
    base = load(tiny_model_folder)
    masks = select(
        {n: p.detach().abs() for n, p in base.named_parameters().items() if n.startswith("model.layers.")}, 0.3, "top"
    )
    folder = write_modified_model(tiny_model_folder, masks, tmp_path / "removed")
    removed = load(folder)
    name = "model.layers.0.mlp.down_proj.weight"
    params = removed.named_parameters()
    assert (params[name][masks[name]] == 0).all() and (params[name][~masks[name]] != 0).any()
    assert (folder / "pivotlens-intervention.json").is_file()
    texts = CORPUS[:5]
    assert language_perplexity(removed, texts)["perplexity"] != pytest.approx(
        language_perplexity(base, texts)["perplexity"], rel=1e-3
    )
