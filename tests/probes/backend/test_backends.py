"""The Backend interface: identities and agreement between transformer-lens and nnsight."""

from __future__ import annotations

import math

import pytest
import torch

from probes.backend import LensRequest
from probes.backend.base import LensRead, chain_reads, top_k
from tests.conftest import EMBEDDED_MODELS, embedded, tiny_backend, tiny_hf_model, tiny_tokenizer

PROMPTS = ["the cloud is", "le nuage est blanc et la", "облако"]


def _plain_logits(model, enc) -> torch.Tensor:
    with torch.no_grad():
        return model(**enc.model_inputs()).logits


def test_last_layer_lens_is_model_output(tiny_kind):
    backend = tiny_backend(tiny_kind)
    reference = tiny_hf_model(tiny_kind)  # same seed, separate copy
    enc = backend.encode(PROMPTS)
    resid = backend.residuals(enc, layers=[-1], positions=[-1])
    lens_logits = backend.unembed(resid)[0, :, 0]
    assert torch.allclose(lens_logits, _plain_logits(reference, enc)[:, -1], atol=1e-4)


def test_backends_agree_on_residuals_and_lens(tiny_kind):
    tl, nn = tiny_backend(tiny_kind), tiny_backend(tiny_kind, backend="nnsight")
    enc = tl.encode(PROMPTS)
    ids = torch.tensor([[5, 6, -1], [7, 8, 9], [10, -1, -1]])
    request = LensRequest(token_ids=ids, rank_group=ids >= 6, top_k=4)
    a, b = tl.lens(enc, request, positions=[-2, -1]), nn.lens(enc, request, positions=[-2, -1])
    for field in ("entropy_bits", "probs_at_ids", "top_probs"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-5), field
    assert torch.equal(a.group_rank, b.group_rank)
    assert torch.equal(tl.residuals(enc, positions=[-1]), nn.residuals(enc, positions=[-1]))


def test_left_padding_does_not_change_results():
    backend = tiny_backend("llama")
    request = LensRequest(top_k=3)
    alone = backend.lens(backend.encode([PROMPTS[0]]), request)
    batched = backend.lens(backend.encode(PROMPTS), request)
    assert torch.allclose(alone.entropy_bits[:, 0], batched.entropy_bits[:, 0], atol=1e-4)
    assert torch.equal(alone.top_ids[:, 0], batched.top_ids[:, 0])


def test_lens_reductions_match_a_direct_computation():
    backend = tiny_backend("llama")
    enc = backend.encode(PROMPTS)
    ids = torch.tensor([[3, 4], [5, -1], [6, 7]])
    group = torch.tensor([[True, True], [False, False], [False, True]])
    out = backend.lens(enc, LensRequest(token_ids=ids, rank_group=group, top_k=2, full=True), layers=[0, 2])
    probs = torch.softmax(backend.unembed(backend.residuals(enc, layers=[0, 2])), -1)
    assert torch.allclose(out.probs, probs, atol=1e-6)
    entropy = -(probs * probs.log2()).sum(-1)
    assert torch.allclose(out.entropy_bits, entropy, atol=1e-4)
    assert out.probs_at_ids[1, 1, 0, 1] == 0
    assert torch.isclose(out.probs_at_ids[1, 2, 0, 1], probs[1, 2, 0, 7])
    best = torch.maximum(probs[1, 0, 0, 3], probs[1, 0, 0, 4])
    assert out.group_rank[1, 0, 0] == int((probs[1, 0, 0] > best).sum())
    assert out.group_rank[1, 2, 0] == int((probs[1, 2, 0] > probs[1, 2, 0, 7]).sum())
    assert out.group_rank[1, 1, 0] == probs.shape[-1]  # empty group: every token ranks above


@pytest.mark.parametrize("n", [4096, 4100, 300, 70])
@pytest.mark.parametrize("k", [1, 5])
def test_blockwise_top_k_equals_a_full_top_k(n, k):
    """Whole blocks only, a tail after them, a single block, too few blocks for k (a full top-k)."""
    values = torch.randn(3, 7, n, generator=torch.Generator().manual_seed(n))
    values[0, 0, -1] = 10.0  # the largest value in the tail
    top, index = top_k(values, k)
    expected = values.topk(k, dim=-1)
    assert torch.equal(top, expected.values) and torch.equal(index, expected.indices)


def _direct_token_log_probs(model, context: list[int], word: list[int]) -> torch.Tensor:
    """``[layer, len(word)]`` float64 log-probability of each token of ``word`` teacher-forced after
    ``context``: the final norm and head on every block's output (Hugging Face's last hidden state
    is already normed, so the last layer is the model's own logits)."""
    ids = torch.tensor([context + word])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        logits = [model.lm_head(model.model.norm(h[0])) for h in out.hidden_states[1:-1]] + [out.logits[0]]
    rows = torch.arange(len(context) - 1, len(context) - 1 + len(word))
    return torch.stack([torch.log_softmax(x.double(), -1)[rows, word] for x in logits])


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_a_long_chain_has_a_finite_log_probability_equal_to_a_direct_computation(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    reference = tiny_hf_model("llama")
    context = backend.tokenize(PROMPTS[1])
    long_word = torch.randint(3, backend.vocab_size, (80,), generator=torch.Generator().manual_seed(0)).tolist()
    short_word = backend.tokenize("nuage", add_special_tokens=False)
    got = backend.chain_log_probs([context, context], [long_word, short_word])  # [layer, 2]: unequal lengths
    assert got.shape == (backend.n_layers, 2) and got.dtype == torch.float64 and got.isfinite().all()
    for row, word in enumerate((long_word, short_word)):
        direct = _direct_token_log_probs(reference, context, word)
        assert got[:, row].tolist() == pytest.approx(direct.sum(-1).tolist(), rel=1e-5)
    # what log space avoids: the float32 product of the long chain's token probabilities is 0
    assert (_direct_token_log_probs(reference, context, long_word).float().exp().prod(-1) == 0).all()
    assert (got[:, 0].exp() > 0).all()


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_one_pass_reads_a_grid_and_chains_as_separate_passes_do(backend_name):
    """Chains teacher-forced after one context share rows where one continues another (causal
    attention: later tokens change nothing before them), and a lens grid over the context is read
    from the same pass: each read equals its own pass (the context alone; chain_log_probs)."""
    backend = tiny_backend("llama", backend=backend_name)
    context = backend.tokenize(PROMPTS[1])
    words = [[11, 12, 13], [11, 12], [14, 15], [16]]  # the 2nd and 4th words ride on the 1st word's row
    chains = chain_reads([context] * len(words), words, share_rows=True)
    assert chains.rows == [context + [11, 12], context + [14]]
    request = LensRequest(token_ids=torch.tensor([[11, 14, 16]]), top_k=3)
    grid = LensRead(request, [p - len(chains.rows[0]) for p in range(len(context))], rows=[0])
    one_grid, one_chain = backend.lens_reads(backend.encode(chains.rows), [grid, chains.read])
    alone = backend.lens(backend.encode([context]), request, positions=range(len(context)))
    for name in ("entropy_bits", "probs_at_ids", "top_probs"):
        assert torch.allclose(getattr(one_grid, name), getattr(alone, name), rtol=1e-5, atol=1e-7), name
    assert torch.equal(one_grid.require("top_ids"), alone.require("top_ids"))
    separate = backend.chain_log_probs([context] * len(words), words)  # a row per word
    assert torch.allclose(chains.log_probs(one_chain), separate, rtol=1e-5, atol=0)
    for row, word in enumerate(words):  # and both are the direct computation on the plain model
        direct = _direct_token_log_probs(tiny_hf_model("llama"), context, word).sum(-1)
        assert separate[:, row].tolist() == pytest.approx(direct.tolist(), rel=1e-5)


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_gradients_match_plain_torch(backend_name):
    backend = tiny_backend("llama", backend=backend_name)
    reference = tiny_hf_model("llama")
    enc = backend.encode(PROMPTS)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    names = ["model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]
    got = backend.loss_and_grads(enc, labels, names)
    loss = reference(**enc.model_inputs(), labels=labels).loss
    loss.backward()
    params = dict(reference.named_parameters())
    assert got.loss == pytest.approx(loss.item(), rel=1e-5)
    for name in names:
        assert torch.allclose(got.grads[name], params[name].grad, atol=1e-6), name


def test_unknown_parameter_name_is_a_clear_error():
    with pytest.raises(KeyError, match="Hugging Face names"):
        tiny_backend("llama").loss_and_grads(*_batch(), ["layers.0.nope"])


def _batch():
    backend = tiny_backend("llama")
    enc = backend.encode(PROMPTS)
    return enc, enc.input_ids.masked_fill(enc.attention_mask == 0, -100)


def test_nnsight_remote_local_round_trip_matches_local():
    local = tiny_backend("llama", backend="nnsight")
    remote = tiny_backend("llama", backend="nnsight", remote="local")
    enc = local.encode(PROMPTS)
    request = LensRequest(token_ids=torch.tensor([[3], [4], [5]]), top_k=3)
    a, b = local.lens(enc, request), remote.lens(enc, request)
    assert torch.equal(a.entropy_bits, b.entropy_bits)
    assert torch.equal(a.probs_at_ids, b.probs_at_ids)
    assert torch.equal(local.residuals(enc, [1]), remote.residuals(enc, [1]))


def test_generation_records_per_step_statistics():
    backend = tiny_backend("llama")
    enc = backend.encode(PROMPTS[:2])
    gen = backend.generate(enc, max_new_tokens=5, top_k=3)
    assert gen.new_ids.shape == (2, 5) and gen.entropy_bits.shape == (2, 5)
    # greedy decoding picks the recorded top-1 token at every step
    assert torch.equal(gen.new_ids, gen.top_ids[..., 0])
    first = backend.lens(enc, LensRequest(top_k=1), layers=[-1])
    assert torch.allclose(gen.entropy_bits[:, 0], first.entropy_bits[0, :, 0], atol=1e-4)
    assert (gen.nucleus_size >= 1).all()


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_plain_generation_returns_the_same_ids_without_statistics(tiny_kind, backend_name):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    enc = backend.encode(PROMPTS)
    plain = backend.generate(enc, max_new_tokens=6, statistics=False)
    recorded = backend.generate(enc, max_new_tokens=6)
    assert torch.equal(plain.new_ids, recorded.new_ids) and torch.equal(plain.new_ids, recorded.top_ids[..., 0])
    assert plain.entropy_bits is None and plain.top_ids is None


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDED_MODELS)
def test_plain_generation_returns_the_same_ids_on_embedded_models(name):
    backend = embedded(name)
    enc = backend.encode(['Français: "nuage" - English: "', "Переведи на английский: облако ->", "日本の首都は"])
    plain = backend.generate(enc, max_new_tokens=12, statistics=False)
    recorded = backend.generate(enc, max_new_tokens=12)
    assert torch.equal(plain.new_ids, recorded.new_ids) and torch.equal(plain.new_ids, recorded.top_ids[..., 0])


def test_beam_search_statistics_follow_the_returned_beam():
    backend = tiny_backend("llama")
    enc = backend.encode(PROMPTS[:1])
    gen = backend.generate(enc, max_new_tokens=6, num_beams=3, top_k=3)
    model = backend._hf_model()
    plain = model.generate(
        input_ids=enc.input_ids,
        attention_mask=enc.attention_mask,
        max_new_tokens=6,
        num_beams=3,
        do_sample=False,
        pad_token_id=backend.pad_id,
    )
    assert torch.equal(gen.new_ids, plain[:, enc.input_ids.shape[1] :])
    # independent check: re-run the model on prompt + the first t returned tokens; the recorded
    # entropy at step t is that of the distribution the t-th returned token was chosen from
    for t in range(gen.new_ids.shape[1]):
        ids = torch.cat([enc.input_ids, gen.new_ids[:, :t]], 1)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[:, -1].float(), -1)
        entropy = -(logp.exp() * logp).sum(-1) / math.log(2)
        assert torch.allclose(gen.entropy_bits[:, t], entropy, atol=1e-3), t


def test_layer_out_of_range_is_a_clear_error():
    backend = tiny_backend("llama")
    with pytest.raises(IndexError, match="blocks 0..2"):
        backend.residuals(backend.encode(PROMPTS), layers=[3])


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDED_MODELS)
def test_embedded_last_layer_equals_model_logits_and_backends_agree(name):
    from transformers import AutoModelForCausalLM

    tl, nn = embedded(name), embedded(name, "nnsight")
    prompts = ['Français: "nuage" - English: "', "The capital of France is", "日本の首都は"]
    enc = tl.encode(prompts)
    reference = AutoModelForCausalLM.from_pretrained(tl.source, attn_implementation="eager").eval()
    logits = tl.unembed(tl.residuals(enc, layers=[-1]))[0, :, 0]
    assert (logits - _plain_logits(reference, enc)[:, -1]).abs().max() < 1e-4
    assert torch.allclose(tl.residuals(enc, positions=[-1, -2]), nn.residuals(enc, positions=[-1, -2]), atol=1e-5)
    request = LensRequest(token_ids=torch.tensor([[100, 200]] * 3), top_k=5)
    a, b = tl.lens(enc, request), nn.lens(enc, request)
    assert torch.allclose(a.probs_at_ids, b.probs_at_ids, atol=1e-5)
    assert torch.allclose(a.entropy_bits, b.entropy_bits, atol=1e-3)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    names = ["model.layers.2.mlp.down_proj.weight", "model.layers.1.self_attn.o_proj.weight"]
    got = tl.loss_and_grads(enc, labels, names)
    reference(**enc.model_inputs(), labels=labels).loss.backward()
    params = dict(reference.named_parameters())
    for n in names:
        assert torch.allclose(got.grads[n], params[n].grad, atol=1e-5, rtol=1e-4)


def test_tiny_tokenizer_is_deterministic():
    assert tiny_tokenizer()("the cloud")["input_ids"] == tiny_tokenizer()("the cloud")["input_ids"]


def test_token_energy_matches_its_definition():
    """Wendler et al.'s token energy written out over the vocabulary: sqrt(mean_i (Ũ_i·ĥ)²) / sqrt(||ŨᵀŨ||_F² / V²)."""
    backend = tiny_backend("gemma3")  # Gemma's (1 + w) norm weight is folded in via norm(1)
    enc = backend.encode(PROMPTS)
    gram = backend.unembedding_gram()
    out = backend.lens(enc, LensRequest(energy_gram=gram), layers=[1])
    model = backend._hf_model()
    with torch.no_grad():
        gamma = backend.parts.final_norm(model)(torch.ones(backend.d_model))
        u = model.lm_head.weight * gamma
        u = u[u.norm(dim=-1) > 0]  # the padding row of the tied embedding is zero
        u = u / u.norm(dim=-1, keepdim=True)
        avg = ((u.T @ u).norm() ** 2 / u.shape[0] ** 2).sqrt()
        h = backend.residuals(enc, layers=[1])[0, :, 0]
        h = h / h.norm(dim=-1, keepdim=True)
        expected = ((h @ u.T) ** 2).mean(-1).sqrt() / avg
    assert torch.allclose(out.energy[0, :, 0], expected, atol=1e-5)
    nn = tiny_backend("gemma3", backend="nnsight").lens(enc, LensRequest(energy_gram=gram), layers=[1])
    assert torch.allclose(nn.energy, out.energy, atol=1e-6)


def test_transformer_lens_wraps_both_tiny_architectures_without_fallback():
    for kind in ("llama", "gemma3"):
        assert tiny_backend(kind).name == "transformer-lens"


@pytest.mark.parametrize("temperature", [0.01, 1.0, 50.0])
def test_nucleus_size_matches_a_full_sort(temperature):
    from probes.backend.base import nucleus_size

    probs = torch.softmax(torch.randn(8, 5000) * temperature, -1)
    full = (probs.sort(-1, descending=True).values.cumsum(-1) < 0.75).sum(-1) + 1
    assert torch.equal(nucleus_size(probs, 0.75, candidates=64), full)


def test_a_missing_part_is_refused_naming_it():
    from probes.backend.errors import UnsupportedArchitectureError

    model = tiny_hf_model("llama")
    model.model.final_norm_renamed = model.model.norm
    del model.model.norm
    with pytest.raises(UnsupportedArchitectureError, match=r"LlamaForCausalLM: .*final norm \(model\.\{norm, ln_f"):
        tiny_wrap(model, "nnsight")


def test_an_unknown_logit_scaling_is_refused_not_reported_wrong():
    """A model whose forward scales its logits in a way pivotlens does not know (here, like Cohere's
    logit_scale under another model type) is refused when wrapped, on either backend."""
    from probes.backend.errors import UnsupportedArchitectureError

    for backend in ("transformer-lens", "nnsight"):
        model = tiny_hf_model("llama")
        forward = model.forward

        def scaled(*args, forward=forward, **kwargs):
            out = forward(*args, **kwargs)
            out.logits = out.logits * 0.0625
            return out

        model.forward = scaled
        with pytest.raises(UnsupportedArchitectureError, match="differs from the model's logits"):
            tiny_wrap(model, backend)


def tiny_wrap(model, backend: str):
    from probes.backend import wrap

    return wrap(model, tiny_tokenizer(), backend=backend, model_name="tiny")
