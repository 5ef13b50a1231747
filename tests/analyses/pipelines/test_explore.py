"""The lens explorer's table against a direct computation, and its answers to bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from analyses.figures.explore import WINDOW
from analyses.pipelines.explore import EXPLORE_COLUMNS, available_lenses, explore
from analyses.pipelines.lens import language_prompts
from probes.backend import LensRequest, wrap
from probes.backend.errors import PromptError, TokenizerVocabularyError, UnknownLensError
from probes.backend.tokensets import TokenSets
from probes.inputs.words import load_concepts
from probes.lens import run_lens
from tests.conftest import CORPUS, tiny_backend, tiny_hf_model, tiny_tokenizer

PROMPT = "the cloud is white and the river is long"


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_grid_equals_the_backends_full_distribution_at_every_layer_and_position(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    found = explore(backend, PROMPT, target="river", latent_word="cloud", top_k=4)
    table = found.table
    ids = backend.tokenize(PROMPT)
    assert list(table.columns) == [c.replace("<latent>", "en") for c in EXPLORE_COLUMNS]
    assert len(table) == backend.n_layers * len(ids)
    sets = TokenSets(backend.tokenizer)
    river, cloud = sorted(sets.ids("river")), sorted(sets.ids("cloud"))
    enc = backend.encode([ids])
    for position in range(len(ids)):
        full = backend.lens(enc, LensRequest(full=True), positions=[position]).probs[:, 0, 0]  # [layer, vocab]
        for layer in range(backend.n_layers):
            row = table[(table.layer == layer) & (table.position == position)].iloc[0]
            probs = full[layer]
            top = probs.topk(4)
            assert row["top_tokens"] == [backend.tokenizer.decode([i]) for i in top.indices.tolist()]
            assert row["top_probs"] == pytest.approx(top.values.tolist(), rel=1e-4)
            entropy = float(-(probs * probs.log()).sum() / math.log(2))
            assert row["entropy_bits"] == pytest.approx(entropy, rel=1e-4)
            assert row["p_target"] == pytest.approx(float(probs[river].sum()), rel=1e-4)
            assert row["p_en"] == pytest.approx(float(probs[cloud].sum()), rel=1e-4)
            assert row["token"] == backend.tokenizer.decode([ids[position]])


@pytest.mark.parametrize("lang", ["fr", "ta"])
def test_words_are_scored_as_the_lens_probe_scores_them(lang):
    """The explorer's P(target) and P(en) at the last position equal the lens probe's on the same
    prompt, layer by layer, with the same unit: on the tiny vocabulary some fr words have prefix sets
    of their own, others share one with another concept (both go by chains), and ta words (a script
    it never saw) all go by their byte chains."""
    model = tiny_hf_model("llama")
    model.config.max_position_embeddings = 1024  # ta prompts are long in bytes
    backend = wrap(model, tiny_tokenizer(), model_name="tiny-long")
    concepts = load_concepts()
    prompts = language_prompts(lang, task="translation")[:6]
    vocabularies = {code: list(concepts[code]) for code in concepts.columns if code != "concept"}
    table = run_lens(backend, prompts, vocabularies=vocabularies, progress=False)
    kinds = set()
    for prompt in prompts:
        rows = table[table["item"] == prompt.item].sort_values("layer")
        if rows.empty:  # dropped by the probe (a copy, or words it cannot tell apart)
            continue
        found = explore(
            backend,
            prompt.text,
            target=prompt.target_word,
            target_lang=prompt.lang,
            latent_word=prompt.latent_word,
        )
        last = found.table[found.table["position"] == found.table["position"].max()].sort_values("layer")
        assert found.word_prob == rows["word_prob"].iloc[0]
        assert last["p_target"].tolist() == pytest.approx(rows["p_target"].tolist(), rel=1e-4)
        assert last["p_en"].tolist() == pytest.approx(rows["p_en"].tolist(), rel=1e-4)
        if found.word_prob == "chain":  # a chain continues the prompt after its last position only
            assert found.table.loc[found.table["position"] < last["position"].iloc[0], "p_target"].isna().all()
            assert "by its chain" in found.title
        kinds.add(found.word_prob)
    assert kinds == {"fr": {"prefix", "chain"}, "ta": {"chain"}}[lang]


def test_a_chain_target_after_a_position_window_is_its_direct_chain_probability():
    """SmolLM2's case on the tiny vocabulary: no token spells 花 (it never saw it), so 花 and its
    English word are scored by their chains, teacher-forced after the last position shown."""
    backend = tiny_backend("llama")
    reference = tiny_hf_model("llama")
    found = explore(backend, PROMPT, target="花", positions=[0, 3])
    assert (found.word_prob, found.latent_word) == ("chain", "flower")
    context = backend.tokenize(PROMPT)[:4]
    with torch.no_grad():
        for column, word in (("p_target", "花"), ("p_en", "flower")):
            chain = TokenSets(backend.tokenizer).chain(word)
            hidden = reference(torch.tensor([context + chain]), output_hidden_states=True).hidden_states
            logits = [reference.lm_head(reference.model.norm(h[0])) for h in hidden[1:-1]]
            logits.append(reference(torch.tensor([context + chain])).logits[0])
            direct = [
                sum(float(torch.log_softmax(x.double(), -1)[len(context) - 1 + j, t]) for j, t in enumerate(chain))
                for x in logits
            ]
            got = found.table[found.table["position"] == 3].sort_values("layer")[column]
            assert got.tolist() == pytest.approx(np.exp(direct).tolist(), rel=1e-5)
            assert found.table.loc[found.table["position"] == 0, column].isna().all()


def test_the_last_layer_is_the_models_own_output():
    backend = tiny_backend("gemma2")  # soft-capped logits: the lens must cap them too
    model = tiny_hf_model("gemma2")
    ids = backend.tokenize(PROMPT)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0].float(), -1)  # [position, vocab]
    last = explore(backend, PROMPT).table.query(f"layer == {backend.n_layers - 1}").sort_values("position")
    assert [row[0] for row in last["top_probs"]] == pytest.approx(probs.max(-1).values.tolist(), rel=1e-4)


def test_positions_window_keeps_only_those_positions():
    backend = tiny_backend("llama")
    n = len(backend.tokenize(PROMPT))
    table = explore(backend, PROMPT, positions=[0, -1]).table
    assert sorted(table["position"].unique()) == [0, n - 1]
    assert table["p_target"].isna().all() and table["p_en"].isna().all()  # no target: no word probabilities


def test_last_keeps_the_prompts_last_positions_and_reads_them_as_in_the_full_grid():
    backend = tiny_backend("llama")
    n = len(backend.tokenize(PROMPT))
    full = explore(backend, PROMPT).table
    tail = explore(backend, PROMPT, last=3).table
    assert sorted(tail["position"].unique()) == [n - 3, n - 2, n - 1]
    assert len(explore(backend, PROMPT, last=10 * n).table) == len(full)  # more than the prompt: all of it
    same = full[full["position"] >= n - 3].reset_index(drop=True)
    assert tail["top_probs"].map(lambda p: p[0]).tolist() == pytest.approx(
        same["top_probs"].map(lambda p: p[0]).tolist()
    )


def test_latent_word_comes_from_the_word_list():
    found = explore(tiny_backend("llama"), PROMPT, target="rivière", latent="en")
    assert found.latent_word == "river"
    assert found.table["p_en"].notna().all()


def test_empty_prompt_says_so():
    with pytest.raises(PromptError, match="empty"):
        explore(tiny_backend("llama"), "   ")


def test_prompt_longer_than_the_context_names_both_lengths():
    backend = tiny_backend("llama")  # max_position_embeddings = 128
    prompt = " ".join(CORPUS[:40])
    n = len(backend.tokenize(prompt))
    assert n > 128
    with pytest.raises(PromptError, match=rf"is {n} tokens long but tiny-llama reads at most 128"):
        explore(backend, prompt)


def test_unknown_lens_lists_the_available_ones():
    assert available_lenses()[0] == "logit"
    with pytest.raises(UnknownLensError, match="unknown lens 'tuned-ish'; available: logit"):
        explore(tiny_backend("llama"), PROMPT, lens="tuned-ish")


def _english_only_tokenizer() -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE without byte fallback: it cannot spell what it never saw."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS[:1] * 20, trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


def test_target_word_the_tokenizer_cannot_spell():
    backend = wrap(tiny_hf_model("llama"), _english_only_tokenizer(), model_name="english-only")
    assert len(explore(backend, PROMPT, target="river").table)  # a word it can spell works
    with pytest.raises(TokenizerVocabularyError, match="cannot spell the target word '河'"):
        explore(backend, PROMPT, target="河")


def test_a_thousand_token_prompt_opens_on_a_window_with_a_scroll_slider():
    model = tiny_hf_model("llama")
    model.config.max_position_embeddings = 2048  # rotary positions: the tiny model reads any length
    backend = wrap(model, tiny_tokenizer(), model_name="tiny-long")
    prompt = " ".join(CORPUS[i % 5] for i in range(130))
    n = len(backend.tokenize(prompt))
    assert n >= 1000
    found = explore(backend, prompt)
    assert found.table["position"].nunique() == n
    fig = found.figure()
    axis = fig.layout.xaxis
    assert list(axis.range) == [n - WINDOW - 0.5, n - 0.5]
    steps = fig.layout.sliders[0].steps  # the scroll: one step per half window, the first one at position 0
    assert (
        steps[0].args[0]["xaxis.range"] == [-0.5, WINDOW - 0.5] and len(steps) == -(-(n - WINDOW) // (WINDOW // 2)) + 1
    )
    assert fig.data[0].z.shape == (backend.n_layers, n)


def test_a_fitted_lens_draws_the_grid_through_that_lens(tmp_path, monkeypatch):
    from probes.backend.lenses import Lens, LensNotFittedError, load_lens, save_lens

    monkeypatch.setenv("PIVOTLENS_CACHE", str(tmp_path))
    backend = tiny_backend("llama")
    generator = torch.Generator().manual_seed(0)
    weight = torch.eye(backend.d_model) + 0.3 * torch.randn(
        backend.n_layers, backend.d_model, backend.d_model, generator=generator
    )
    save_lens(Lens("linear", "linear", weight, torch.zeros(backend.n_layers, backend.d_model)), backend.weights_hash)
    found = explore(backend, PROMPT, lens="linear", top_k=3)
    ids = backend.tokenize(PROMPT)
    full = backend.lens(
        backend.encode([ids]), LensRequest(full=True), positions=[len(ids) - 1], lens=load_lens(backend, "linear")
    ).probs[:, 0, 0]
    last = found.table[found.table.position == len(ids) - 1].sort_values("layer")
    assert last["top_probs"].map(lambda p: p[0]).tolist() == pytest.approx(full.max(-1).values.tolist(), rel=1e-4)
    logit = explore(backend, PROMPT, top_k=3).table
    assert not logit["top_probs"].equals(found.table["top_probs"])  # the translator changed the reading
    with pytest.raises(LensNotFittedError, match="fit-lens"):
        explore(backend, PROMPT, lens="tuned")
