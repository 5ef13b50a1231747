"""Shared fixtures: tiny random models built from a config (no downloads) and the embedded models."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from probes.backend import Backend, wrap

CORPUS = [
    "the cloud is white and the river is long",
    "le nuage est blanc et la rivière est longue",
    "die Wolke ist weiß und der Fluss ist lang",
    "облако белое и река длинная",
    "云是白色的，河很长",
] * 20


@functools.cache
def tiny_tokenizer(words: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in memory on a few multilingual lines (and, with
    ``words``, on lines repeating them, so that words such as task answers are one token each)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<bos>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS + [f"Answer:{word}" for word in words] * 50, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


TINY_CONFIGS = {
    "llama": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "gemma3": {
        "model_type": "gemma3_text",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "sliding_window": 8,
    },
    "gemma2": {
        "model_type": "gemma2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "final_logit_softcapping": 5.0,
        "attn_logit_softcapping": 50.0,
        "sliding_window": 8,
    },
}


def tiny_hf_model(kind: str = "llama", n_layers: int = 3, seed: int = 0, **overrides: object):
    """A randomly initialised model of a real architecture, small enough for fast tests
    (``overrides``: fields of the model's config that differ from the tiny defaults)."""
    from transformers import AutoConfig

    spec = {"max_position_embeddings": 128, **TINY_CONFIGS[kind], **overrides}
    model_type = spec.pop("model_type")
    fields = AutoConfig.for_model(model_type).to_dict()
    unknown = sorted(set(overrides) - set(fields))  # a config takes any keyword silently
    assert not unknown, f"{model_type} config has no field {unknown}"
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tiny_tokenizer()),
        num_hidden_layers=n_layers,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
        **spec,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    # the default init gives near-uniform outputs; larger matrices give distributions with structure
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(3.0)
    config.architectures = [type(model).__name__]
    return model.eval()


def tiny_backend(
    kind: str = "llama", backend: str = "transformer-lens", seed: int = 0, *, remote: bool | str = False, **overrides
) -> Backend:
    """:func:`tiny_hf_model` (its config changed by ``overrides``) behind a backend, named
    ``tiny-<kind>``; ``remote="local"`` runs nnsight's serialised round trip."""
    return wrap(
        tiny_hf_model(kind, seed=seed, **overrides),
        tiny_tokenizer(),
        backend=backend,
        model_name=f"tiny-{kind}",
        remote=remote,
    )


@pytest.fixture(params=["llama", "gemma3", "gemma2"])
def tiny_kind(request) -> str:
    return request.param


@functools.cache
def embedded(name: str, backend: str = "transformer-lens") -> Backend:
    """An embedded model behind a backend, loaded once per test session."""
    from probes.backend import load

    return load(name, backend=backend)


EMBEDDED_MODELS = ["gemma-3-270m", "smollm2-135m"]


@pytest.fixture
def tiny_model_folder(tmp_path):
    """A tiny llama written with ``save_pretrained``: a local model folder, as users pass one."""
    folder = tmp_path / "tiny-llama"
    tiny_hf_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


LCB_COPY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lcb"


@pytest.fixture(scope="session")
def lcb_folder() -> Path:
    """The Language Confusion Benchmark's files (test_sets.zip, words) beside the repository
    (``../shared/data/lcb``; ``$PIVOTLENS_LCB`` wins); never vendored into the repository."""
    folder = Path(os.environ.get("PIVOTLENS_LCB") or LCB_COPY).resolve()
    if not (folder / "test_sets.zip").is_file() or not (folder / "words").is_file():
        pytest.skip(f"no copy of the Language Confusion Benchmark at {folder} (test_sets.zip and words)")
    return folder
