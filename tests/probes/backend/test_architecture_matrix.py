"""The architecture matrix: every probe's core primitive on tiny random models of many
architectures, built from their configs (no downloads), on both backends.

Per architecture and backend: the last-layer lens is the model's own logits (with the head scaled
up, so a missing logit scale or soft-cap cannot hide in near-uniform outputs), the read-out loss
of the gradient probes is the model's own loss, gradients match plain torch under Hugging Face's
parameter names, and generation records the model's own next-token statistics. Between the
backends: residuals, lens readouts, parameter names, interference per module and generated tokens
agree. Each test records notes (``record_property``) that ``scripts/support_table.py`` turns into
``docs/architectures.md``.
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from analyses.stats.flops import Uncounted, flops_model
from probes.backend import BACKENDS, Backend, LensRequest, wrap
from probes.interference import Batch, BatchPair, Readout, run_interference
from tests.conftest import tiny_tokenizer

_ATTENTION = {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96}
# model_type and the few config values each family needs (tiny sizes are added in _config).
MATRIX: dict[str, dict[str, object]] = {
    "llama": {"model_type": "llama", **_ATTENTION},
    "qwen2": {"model_type": "qwen2", **_ATTENTION},
    "qwen3": {"model_type": "qwen3", **_ATTENTION, "head_dim": 16},
    "mistral": {"model_type": "mistral", **_ATTENTION, "sliding_window": 4},
    "gemma2": {
        "model_type": "gemma2",
        **_ATTENTION,
        "head_dim": 16,
        "final_logit_softcapping": 5.0,
        "attn_logit_softcapping": 50.0,
        "sliding_window": 4,
    },
    "gemma3": {"model_type": "gemma3_text", **_ATTENTION, "head_dim": 16, "sliding_window": 4},
    "phi3": {"model_type": "phi3", **_ATTENTION},
    "cohere": {"model_type": "cohere", **_ATTENTION, "logit_scale": 0.0625},
    "cohere2": {"model_type": "cohere2", **_ATTENTION, "logit_scale": 0.0625, "sliding_window": 4},
    "gpt2": {"model_type": "gpt2", "n_head": 4, "n_inner": 96},
    "gpt_neox": {"model_type": "gpt_neox", "num_attention_heads": 4, "intermediate_size": 96},
    "bloom": {"model_type": "bloom", "n_head": 4},
    "olmo": {"model_type": "olmo", **_ATTENTION},
    "olmo2": {"model_type": "olmo2", **_ATTENTION},
    "stablelm": {"model_type": "stablelm", **_ATTENTION},
    "falcon": {"model_type": "falcon", "num_attention_heads": 4},  # Falcon-7B layout: multi-query, parallel attention
    "falcon-40b-layout": {
        "model_type": "falcon",
        "num_attention_heads": 4,
        "num_kv_heads": 2,
        "new_decoder_architecture": True,
    },
    "mixtral": {
        "model_type": "mixtral",
        **_ATTENTION,
        "intermediate_size": 48,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    },
    "persimmon": {
        "model_type": "persimmon",
        "num_attention_heads": 4,
        "intermediate_size": 96,
    },  # not in transformer-lens
}
ARCHS = list(MATRIX)
PROMPTS = ["the cloud is", "le nuage est blanc et la", "облако"]


def _config(arch: str, vocab_size: int):
    spec = dict(MATRIX[arch])
    return AutoConfig.for_model(
        spec.pop("model_type"),
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **spec,
    )


@functools.cache
def reference(arch: str, words: tuple[str, ...] = ()) -> torch.nn.Module:
    """The tiny model of ``arch`` (seeded), matrices x3 and the head scaled until the model's own
    logits have a standard deviation of at least 2 (Cohere's x0.0625 scale included), so that a
    missing logit scale or soft-cap changes the distribution, not just near-uniform noise.
    ``words``: those of ``tiny_tokenizer(words)``, whose vocabulary the model gets."""
    config = _config(arch, len(tiny_tokenizer(words)))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    ids = torch.tensor([tiny_tokenizer()(PROMPTS[0])["input_ids"]])
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(3.0)
        for _ in range(3):
            spread = model(input_ids=ids).logits.std().item()
            if spread >= 2.0:
                break
            model.get_output_embeddings().weight.mul_(3.0 / spread)
    config.architectures = [type(model).__name__]
    return model


@functools.cache
def matrix_backend(arch: str, backend: str) -> tuple[Backend, tuple[str, ...]]:
    """``arch`` behind ``backend`` (built once per session) and the warnings wrapping it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped = wrap(copy.deepcopy(reference(arch)), tiny_tokenizer(), backend=backend, model_name=f"tiny-{arch}")
    return wrapped, tuple(str(w.message) for w in caught if "falling back" in str(w.message))


def _batch(backend: Backend, prompts=PROMPTS):
    enc = backend.encode(prompts)
    return enc, enc.input_ids.masked_fill(enc.attention_mask == 0, -100)


def _model_logits(arch: str, enc) -> torch.Tensor:
    with torch.no_grad():
        return reference(arch)(**enc.model_inputs()).logits


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


def test_wrap(arch, backend_name, record_property):
    backend, fallbacks = matrix_backend(arch, backend_name)
    record_property("architecture", type(reference(arch)).__name__)
    for message in fallbacks:
        assert (
            "\n" not in message and "falling back to nnsight" in message and type(reference(arch)).__name__ in message
        )
        record_property("note", message)
    if backend_name == "transformer-lens" and not fallbacks:
        assert backend.name == "transformer-lens"
    transform = backend.parts.transform.describe()
    if transform:
        record_property("note", f"final transform: {transform}")
    shape = flops_model(backend.config)
    if isinstance(shape, Uncounted):
        record_property("note", f"FLOPs not counted: {shape.reason}")
    elif shape.n_experts:
        record_property("note", f"FLOPs count {shape.active_experts} routed of {shape.n_experts} experts")


def test_last_layer_lens_is_the_model_logits(arch, backend_name):
    backend, _ = matrix_backend(arch, backend_name)
    enc = backend.encode(PROMPTS)
    own = _model_logits(arch, enc)[:, -1]
    lens = backend.unembed(backend.residuals(enc, layers=[-1]))[0, :, 0]
    assert own.std() > 1.5, "the scaled head should give logits with structure"
    assert torch.allclose(lens, own, atol=1e-5, rtol=1e-5), (lens - own).abs().max()
    readout = backend.lens(enc, LensRequest(top_k=3), layers=[-1])
    top = torch.softmax(own.float(), -1).topk(3)
    assert torch.allclose(readout.top_probs[0, :, 0], top.values, atol=1e-5)


def test_read_out_loss_is_the_model_loss(arch, backend_name):
    """The gradient probes' loss at the output (interference, pivoted loss) is the model's own."""
    backend, _ = matrix_backend(arch, backend_name)
    enc, labels = _batch(backend)
    stream = backend.grad_stream(enc, labels, [])
    with torch.no_grad():
        own = reference(arch)(**enc.model_inputs(), labels=labels).loss
    assert stream.loss == pytest.approx(own.item(), rel=1e-5)


def test_gradients_match_plain_torch_under_hugging_face_names(arch, backend_name):
    backend, _ = matrix_backend(arch, backend_name)
    model = copy.deepcopy(reference(arch))
    assert list(backend.named_parameters()) == [n for n, _ in model.named_parameters()]
    enc, labels = _batch(backend)
    names = [n for n, p in model.named_parameters() if p.dim() == 2][:6]
    got = backend.loss_and_grads(enc, labels, names)
    loss = model(**enc.model_inputs(), labels=labels).loss
    loss.backward()
    params = dict(model.named_parameters())
    assert got.loss == pytest.approx(loss.item(), rel=1e-5)
    for name in names:
        assert torch.allclose(got.grads[name], params[name].grad, atol=1e-6, rtol=1e-4), name


def test_generation_records_the_model_distribution(arch, backend_name):
    backend, _ = matrix_backend(arch, backend_name)
    enc = backend.encode(PROMPTS[:2])
    gen = backend.generate(enc, max_new_tokens=3, top_k=2)
    assert torch.equal(gen.new_ids, gen.top_ids[..., 0])  # greedy picks the recorded top-1
    first = backend.lens(enc, LensRequest(top_k=1), layers=[-1])
    assert torch.allclose(gen.entropy_bits[:, 0], first.entropy_bits[0, :, 0], atol=1e-4)
    assert (gen.nucleus_size >= 1).all()


def test_backends_agree(arch):
    (tl, _), (nn, _) = matrix_backend(arch, "transformer-lens"), matrix_backend(arch, "nnsight")
    enc = tl.encode(PROMPTS)
    assert torch.allclose(tl.residuals(enc, positions=[-2, -1]), nn.residuals(enc, positions=[-2, -1]), atol=1e-5)
    ids = torch.tensor([[5, 6, -1], [7, 8, 9], [10, -1, -1]])
    request = LensRequest(token_ids=ids, rank_group=ids >= 6, top_k=4)
    a, b = tl.lens(enc, request), nn.lens(enc, request)
    for field in ("entropy_bits", "probs_at_ids", "top_probs"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-5), field
    assert list(tl.named_parameters()) == list(nn.named_parameters())
    gen_a, gen_b = tl.generate(enc, max_new_tokens=3), nn.generate(enc, max_new_tokens=3)
    assert torch.equal(gen_a.new_ids, gen_b.new_ids)


def test_parameter_scopes_agree_between_backends_and_name_real_modules(arch):
    """Both backends give the same scopes, and each one names the module that holds the tensor:
    inside a block, ``<blocks>.<layer>.<module>.<tensor>`` is the Hugging Face name and
    ``getattr(block.get_submodule(module), tensor)`` the parameter itself; fused projections
    (GPT-2's ``c_attn``, Phi-3's ``qkv_proj``, Falcon's ``query_key_value``) keep their path."""
    (tl, _), (nn, _) = matrix_backend(arch, "transformer-lens"), matrix_backend(arch, "nnsight")
    scopes = tl.parameter_scopes()
    assert scopes == nn.parameter_scopes()
    model = tl._hf_model()
    params = dict(model.named_parameters())
    assert list(scopes) == list(params)
    blocks = tl.parts.block_list(model)
    for name, where in scopes.items():
        if where.layer is None:
            owner = model.get_submodule(where.module)
        else:
            assert name == f"{tl.parts.blocks}.{where.layer}.{where.module}.{where.tensor}"
            owner = blocks[where.layer].get_submodule(where.module)
        assert getattr(owner, where.tensor) is params[name], name
    assert {where.layer for where in scopes.values()} == {None, *range(tl.n_layers)}
    groups = {where.group for where in scopes.values() if where.layer == 0}
    fused = [g for g in groups if g.endswith(("c_attn", "qkv_proj", "query_key_value"))]
    assert ({"q", "k", "v"} <= groups) != bool(fused), groups  # separate projections or one fused tensor
    outside = {where.group for where in scopes.values() if where.layer is None}
    assert "embed" in outside


def test_interference_per_module_agrees_between_backends(arch):
    tables = []
    for name in BACKENDS:
        backend, _ = matrix_backend(arch, name)
        enc_a, labels_a = _batch(backend, PROMPTS[:2])
        enc_b, labels_b = _batch(backend, PROMPTS[1:])
        pair = BatchPair(0, Batch("en", enc_a, labels_a), Batch("fr", enc_b, labels_b))
        tables.append(
            run_interference(backend, [pair], readout_a=Readout(layer=0, label_smoothing=0.1), progress=False)
        )
    a, b = tables
    assert a[["param", "layer", "module", "scope", "n_params"]].equals(
        b[["param", "layer", "module", "scope", "n_params"]]
    )
    assert (a["cosine"] - b["cosine"]).abs().max() < 1e-6
    model_rows = a[a["scope"] == "model"]
    assert int(model_rows["n_params"].iloc[0]) == sum(p.numel() for p in reference(arch).parameters())
