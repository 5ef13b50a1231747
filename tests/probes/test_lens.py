"""The lens probe against a direct computation and transformer-lens 4.3's built-in logit lens."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from probes.backend import LensRequest
from probes.backend.tokensets import TokenSets
from probes.inputs.prompts import build_prompts, translation_prompts
from probes.lens import run_lens
from tests.conftest import embedded, tiny_backend, tiny_hf_model

WORDS = pd.DataFrame(
    {
        "concept": ["cloud", "river", "white", "long"],
        "en": ["cloud", "river", "white", "long"],
        "fr": ["nuage", "rivière", "blanc", "longue"],
        "de": ["Wolke", "Fluss", "weiß", "lang"],
        "ru": ["облако", "река", "белое", "длинная"],
    }
)


def _direct(model, tokenizer, prompt, target_ids, latent_ids):
    """Plain transformers: hidden states -> final norm -> head -> softmax at the last position."""
    enc = tokenizer(prompt.text, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
        # hidden_states[0] is the embedding; [l + 1] is block l's output, except that the last
        # entry already has the final norm applied by transformers
        rows = []
        for layer in range(model.config.num_hidden_layers):
            h = hidden[layer + 1][0, -1]
            normed = h if layer == model.config.num_hidden_layers - 1 else model.model.norm(h)
            probs = torch.softmax(model.lm_head(normed), -1)
            best = probs[list(target_ids)].max()
            rows.append(
                (float(probs[list(target_ids)].sum()), float(probs[list(latent_ids)].sum()), int((probs > best).sum()))
            )
    return rows


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_probe_equals_direct_computation(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    reference = tiny_hf_model("llama")
    prompts = build_prompts("translation", WORDS, "ru")
    table = run_lens(backend, prompts, progress=False, batch_size=3)
    sets = TokenSets(backend.tokenizer)
    assert set(table["concept"]) <= set(WORDS["concept"]) and len(table) == len(set(table["concept"])) * 3
    for prompt in prompts:
        rows = table[table["concept"] == prompt.concept].sort_values("layer")
        if rows.empty:
            continue
        direct = _direct(
            reference, backend.tokenizer, prompt, sets.ids(prompt.target_word), sets.ids(prompt.latent_word)
        )
        assert rows["p_target"].to_numpy() == pytest.approx([d[0] for d in direct], abs=1e-5)
        assert rows["p_en"].to_numpy() == pytest.approx([d[1] for d in direct], abs=1e-5)
        assert list(rows["target_rank"]) == [d[2] for d in direct]


def test_chain_probability_is_the_product_of_teacher_forced_token_probabilities():
    backend = tiny_backend("llama")
    reference = tiny_hf_model("llama")
    prompt = build_prompts("repetition", WORDS, "fr")[0]
    table = run_lens(backend, [prompt], word_prob="chain", progress=False)
    chain = TokenSets(backend.tokenizer).chain(prompt.target_word)
    ids = backend.tokenize(prompt.text) + chain
    with torch.no_grad():
        hidden = reference(torch.tensor([ids]), output_hidden_states=True).hidden_states[1]  # block 0
        logp = torch.log_softmax(reference.lm_head(reference.model.norm(hidden[0])), -1)
    start = len(ids) - len(chain) - 1
    expected = sum(float(logp[start + j, t]) for j, t in enumerate(chain))
    got = table[table["layer"] == 0]["p_target"].iloc[0]
    assert got == pytest.approx(float(torch.tensor(expected).exp()), rel=1e-4)


def test_resume_skips_finished_batches(tmp_path):
    from probes.backend.store import ResultsStore, provenance

    backend = tiny_backend("llama")
    prompts = build_prompts("repetition", WORDS, "de")
    store = ResultsStore(tmp_path)
    prov = provenance("lens", {"t": 1}, backend.describe())
    first = store.run(prov)
    run_lens(backend, prompts[:2], run=first, progress=False, batch_size=1)
    again = store.run(prov)
    done_before = again.done_items()
    table = run_lens(backend, prompts, run=again, progress=False, batch_size=1)
    expected = run_lens(backend, prompts, progress=False)  # the same prompts without a store
    assert 0 < len(done_before) <= 2
    assert sorted(set(table["item"])) == sorted(set(expected["item"]))
    assert len(table) == len(expected)  # nothing computed twice


@pytest.mark.slow
def test_agrees_with_transformer_lens_builtin_logit_lens_on_single_token_targets():
    from transformer_lens.tools.analysis.logit_lens import logit_lens

    backend = embedded("gemma-3-270m")
    sets = TokenSets(backend.tokenizer)
    words = pd.DataFrame(
        {"concept": ["book", "water"], "en": ["book", "water"], "fr": ["livre", "eau"], "de": ["Buch", "Wasser"]}
    )
    prompts = translation_prompts(words, "fr", "de", shots=1)
    table = run_lens(backend, prompts, progress=False, word_prob="prefix")
    for prompt in prompts:
        target = backend.tokenize(prompt.target_word, add_special_tokens=False)
        assert len(target) == 1 and sets.is_single_token(prompt.target_word)
        tokens = torch.tensor([backend.tokenize(prompt.text)])
        result = logit_lens(backend.bridge, tokens, targets=torch.tensor(target), return_type="probs")
        builtin = result.values[1:, 0, 0] if result.values.dim() == 3 else result.values[1:, 0]
        # ours at the single target token: the probe's set includes prefixes, so compare the token itself
        ours = backend.lens(backend.encode([prompt.text]), LensRequest(token_ids=torch.tensor([target])))
        assert torch.allclose(ours.probs_at_ids[:, 0, 0, 0], builtin.flatten()[: backend.n_layers].float(), atol=1e-4)
    assert (table["layer"].max() + 1) == backend.n_layers
