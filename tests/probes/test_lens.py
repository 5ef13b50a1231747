"""The lens probe against a direct computation and transformer-lens 4.3's built-in logit lens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

from probes.backend import LensRequest
from probes.backend.errors import TaskRequestError
from probes.backend.languages import get_language
from probes.backend.models import ensure_embedded
from probes.backend.tokensets import TokenSets
from probes.inputs.prompts import check_request, default_source, lens_prompts, translation_prompts
from probes.inputs.words import load_cloze, load_concepts
from probes.lens import _prepare, run_lens
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
    prompts = lens_prompts("translation", WORDS, "ru", src="fr", shots=2)
    table = run_lens(backend, prompts, progress=False, batch_size=3, word_prob="prefix")
    sets = TokenSets(backend.tokenizer)
    assert set(table["concept"]) <= set(WORDS["concept"]) and len(table) == len(set(table["concept"])) * 3
    assert set(table["word_prob"]) == {"prefix"} and set(table["shots"]) == {2}
    assert table["n_dropped_copy"].nunique() == 1 and len(set(table["concept"])) + table["n_dropped_degenerate"].iloc[
        0
    ] == len(prompts)
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
    prompt = lens_prompts("repetition", WORDS, "fr", shots=2)[0]
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


def _direct_chain(model, ids, chain):
    """Plain transformers, per layer: the chain log-probability of ``chain`` after ``ids`` (teacher
    forced), and the entropy (bits) and full-vocabulary log-probabilities at the prompt's last token."""
    with torch.no_grad():
        hidden = model(torch.tensor([ids + chain[:-1]]), output_hidden_states=True).hidden_states
        return [
            _layer_chain(model, hidden, layer, len(ids) - 1, chain) for layer in range(model.config.num_hidden_layers)
        ]


def _layer_chain(model, hidden, layer, start, chain):
    h = hidden[layer + 1][0]  # the last layer's hidden state is already normed
    normed = h if layer == model.config.num_hidden_layers - 1 else model.model.norm(h)
    logp = torch.log_softmax(model.lm_head(normed), -1)
    at_answer = logp[start]
    entropy = float(-(at_answer.exp() * at_answer).sum() / math.log(2))
    return sum(float(logp[start + j, t]) for j, t in enumerate(chain)), entropy, at_answer


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_chain_scored_prompts_equal_teacher_forcing_at_every_layer(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    reference = tiny_hf_model("llama")
    prompts = lens_prompts("translation", WORDS, "de", src="fr", shots=2)
    table = run_lens(backend, prompts, word_prob="chain", progress=False, batch_size=2)
    sets = TokenSets(backend.tokenizer)
    assert set(table["word_prob"]) == {"chain"} and table["concept"].nunique() >= 2
    for prompt in prompts:
        rows = table[table["concept"] == prompt.concept].sort_values("layer")
        if rows.empty:
            continue
        target, latent = sets.chain(prompt.target_word), sets.chain(prompt.latent_word)
        ids = backend.tokenize(prompt.text)
        with_target, with_latent = _direct_chain(reference, ids, target), _direct_chain(reference, ids, latent)
        assert rows["p_target"].to_numpy() == pytest.approx([math.exp(d[0]) for d in with_target], rel=1e-4)
        assert rows["p_en"].to_numpy() == pytest.approx([math.exp(d[0]) for d in with_latent], rel=1e-4)
        assert rows["entropy_bits"].to_numpy() == pytest.approx([d[1] for d in with_target], abs=1e-4)
        ranks = [int((d[2] > d[2][target].max()).sum()) for d in with_target]
        assert list(rows["target_rank"]) == ranks


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_chain_scoring_reads_the_same_with_and_without_the_prompts_cache(tiny_kind, backend_name, monkeypatch):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    prompts = lens_prompts("translation", WORDS, "de", src="fr", shots=2)
    cached = run_lens(backend, prompts, word_prob="chain", progress=False)
    monkeypatch.setattr(backend, "reuses_prefix_cache", False)
    uncached = run_lens(backend, prompts, word_prob="chain", progress=False)
    exact = ["concept", "layer", "target_rank", "top_tokens"]
    pd.testing.assert_frame_equal(cached[exact], uncached[exact])
    for column in ("p_target", "p_en", "entropy_bits"):
        assert cached[column].to_numpy() == pytest.approx(uncached[column].to_numpy(), rel=1e-4, abs=1e-6)


def test_resume_skips_finished_batches(tmp_path):
    from probes.backend.store import ResultsStore, provenance

    backend = tiny_backend("llama")
    prompts = lens_prompts("repetition", WORDS, "de")
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


def _tokenizer_only(model: str) -> SimpleNamespace:
    """What the probe's preparation step reads of a backend: its tokenizer and token sets (no weights load)."""
    tok = AutoTokenizer.from_pretrained(ensure_embedded(model))
    return SimpleNamespace(tokenizer=tok, token_sets=TokenSets(tok), tokenize=lambda text: tok(text)["input_ids"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gemma-3-270m", "smollm2-135m"])
def test_no_kept_translation_prompt_can_copy_its_source_word(model):
    backend = _tokenizer_only(model)
    concepts = load_concepts()
    sets = backend.token_sets
    vocabularies = {code: list(concepts[code]) for code in ("en", "fr", "es", "it", "pt")}
    for target in ("es", "it", "pt"):
        prompts = lens_prompts("translation", concepts, target, src="fr")
        kept, dropped = _prepare(backend, prompts, "auto", vocabularies=vocabularies)
        assert dropped["copy"] > 0 and len(kept) + sum(dropped.values()) == len(prompts)
        for example in kept:
            prompt = example.prompt
            if example.kind == "prefix":
                assert not set(example.target) & sets.ids(prompt.source_word), prompt
            else:
                assert prompt.target_word[0] != prompt.source_word[0], prompt
            assert all(answer[0] != prompt.target_word[0] for answer in prompt.demo_answers)
        # with the copy rule off, the same prompts come back
        assert (
            len(_prepare(backend, prompts, "auto", vocabularies=vocabularies, drop_copies=False)[0])
            == len(kept) + dropped["copy"]
        )


def test_cloze_prompts_are_five_shot_without_a_demonstration_that_starts_like_the_answer():
    prompts = lens_prompts("cloze", load_concepts(), "sw", cloze=load_cloze())
    assert len(prompts) >= 43 and {p.shots for p in prompts} == {5}
    for prompt in prompts:
        assert prompt.text.count('Jibu: "') == 6 and prompt.text.endswith('Jibu: "')
        assert all(answer[0] != prompt.target_word[0] for answer in prompt.demo_answers)


def test_bad_requests_are_refused_before_any_model():
    concepts, cloze = load_concepts(), load_cloze()
    with pytest.raises(TaskRequestError, match=r"no cloze sentences for 'fa' in .*cloze.csv.*--task translation"):
        check_request("cloze", ["fa"], cloze=cloze)
    with pytest.raises(TaskRequestError, match="use --task repetition if repetition is meant"):
        lens_prompts("translation", concepts, "de", src="de")
    assert lens_prompts("repetition", concepts, "de")[0].task == "repetition"


def test_default_source_never_shares_the_target_script():
    for lang in load_concepts().columns[1:]:
        source = default_source(lang)
        assert get_language(source).script != get_language(lang).script and source not in (lang, "en")
    assert default_source("es") == "ru" and default_source("ru") == "fr"
