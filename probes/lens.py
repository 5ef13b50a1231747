"""Latent-language logit lens (Wendler et al. 2024, "Do Llamas Work in English?", spec 1.3-1.6).

For each prompt, at the answer position, at every layer ``l``: ``p_l = softmax(U · norm(h_l))``
with the model's own final norm and unembedding (spec 1.5). ``P(lang)`` is the sum of ``p_l``
over the word's token-id set (prefix rule, spec 1.3; default) or the chain probability of the
whole word teacher-forced through the lens (``word_prob="chain"``). Entropy is in bits over
the full vocabulary (spec 1.6).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch

from probes.backend import Backend, LensRequest
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.backend.tokensets import TokenSets, overlapping
from probes.inputs.prompts import LensPrompt
from probes.registry import register_probe

WordProb = Literal["prefix", "chain"]

LENS_COLUMNS = {
    "task": "translation, repetition or cloze",
    "src_lang": "language of the prompt's source words (= lang for repetition and cloze)",
    "lang": "target language: the answer is the concept's word in this language",
    "latent": "latent language whose word probability is p_<latent> (default en)",
    "concept": "concept id from the word list",
    "layer": "0-based block index; the last layer is the model's own output",
    "p_target": "probability of the target word at this layer (prefix-set sum or chain probability)",
    "p_<latent>": "probability of the latent-language word (p_en by default), same rule",
    "entropy_bits": "entropy of the layer's next-token distribution over the full vocabulary, in bits",
    "target_rank": "rank of the best-ranked token of the target set (0 = top-1)",
    "top_tokens": "the layer's top-k next tokens, decoded",
    "energy": "token energy of the residual (spec 1.6; only with energy=True)",
    "item": "run key of the prompt (task|src|lang|latent|concept)",
}


@dataclass(frozen=True)
class _Encoded:
    prompt: LensPrompt
    ids: list[int]
    target: list[int]  # prefix-rule token set, or the word's chain
    latent: list[int]


def _prepare(backend: Backend, prompts: Sequence[LensPrompt], word_prob: WordProb) -> tuple[list[_Encoded], int]:
    """Tokenize prompts and words; drop examples as Wendler does (empty set, or target and latent
    sets sharing a token). Returns the kept examples and how many were dropped."""
    sets = TokenSets(backend.tokenizer)
    kept, dropped = [], 0
    for prompt in prompts:
        target_set, latent_set = sets.ids(prompt.target_word), sets.ids(prompt.latent_word)
        same = prompt.lang == prompt.latent_lang
        if not target_set or not latent_set or (not same and overlapping(target_set, latent_set)):
            dropped += 1
            continue
        if word_prob == "chain":
            target, latent = sets.chain(prompt.target_word), sets.chain(prompt.latent_word)
        else:
            target, latent = sorted(target_set), sorted(latent_set)
        kept.append(_Encoded(prompt, backend.tokenize(prompt.text), target, latent))
    return kept, dropped


def _pad(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [-1] * (width - len(r)) for r in rows], dtype=torch.long)


def _chain_probability(backend: Backend, batch: Sequence[_Encoded], words: Sequence[list[int]]) -> torch.Tensor:
    """``[layer, batch]`` product over the word's tokens of each token's lens probability, with
    the earlier tokens appended to the prompt (teacher forcing)."""
    lengths = [len(w) for w in words]
    width = max(lengths)
    enc = backend.encode([e.ids + w[:-1] for e, w in zip(batch, words)])
    seq = enc.input_ids.shape[1]
    positions = torch.arange(seq - width, seq).unsqueeze(0).expand(len(batch), -1)
    ids = _pad([[-1] * (width - n) + w for n, w in zip(lengths, words)])
    out = backend.lens(enc, LensRequest(token_ids=ids), positions=positions)
    diagonal = out.probs_at_ids.diagonal(dim1=2, dim2=3)  # position j scores token j: [L, B, width]
    return torch.where(ids.unsqueeze(0) >= 0, diagonal, torch.ones_like(diagonal)).prod(-1)


def _batch_rows(
    backend: Backend, batch: Sequence[_Encoded], word_prob: WordProb, top_k: int, gram: torch.Tensor | None
) -> pd.DataFrame:
    enc = backend.encode([e.ids for e in batch])
    n_target = [len(e.target) for e in batch]
    ids = _pad([e.target + e.latent for e in batch]) if word_prob == "prefix" else _pad([e.target for e in batch])
    columns = torch.arange(ids.shape[1]).unsqueeze(0)
    is_target = columns < torch.tensor(n_target).unsqueeze(1)  # [B, n]
    request = LensRequest(token_ids=ids, rank_group=is_target, top_k=top_k, energy_gram=gram)
    readout = backend.lens(enc, request, positions=[-1])
    probs = readout.probs_at_ids[:, :, 0]  # [L, B, n]
    if word_prob == "prefix":
        p_target = (probs * is_target).sum(-1)
        p_latent = (probs * (~is_target & (ids >= 0))).sum(-1)
    else:
        p_target = _chain_probability(backend, batch, [e.target for e in batch])
        p_latent = _chain_probability(backend, batch, [e.latent for e in batch])
    target_rank = readout.group_rank[:, :, 0]
    decode = backend.tokenizer.convert_ids_to_tokens
    records = []
    for b, example in enumerate(batch):
        prompt = example.prompt
        for li, layer in enumerate(readout.layers):
            records.append(
                {
                    "task": prompt.task,
                    "src_lang": prompt.src_lang,
                    "lang": prompt.lang,
                    "latent": prompt.latent_lang,
                    "concept": prompt.concept,
                    "layer": layer,
                    "p_target": float(p_target[li, b]),
                    f"p_{prompt.latent_lang}": float(p_latent[li, b]),
                    "entropy_bits": float(readout.entropy_bits[li, b, 0]),
                    "target_rank": int(target_rank[li, b]),
                    "top_tokens": decode(readout.top_ids[li, b, 0].tolist()),
                    "item": prompt.item,
                }
            )
            if gram is not None:
                records[-1]["energy"] = float(readout.energy[li, b, 0])
    return pd.DataFrame.from_records(records)


@register_probe("lens", paper="Wendler et al. 2024, spec 1.3-1.6", columns=LENS_COLUMNS)
def run_lens(
    backend: Backend,
    prompts: Sequence[LensPrompt],
    *,
    word_prob: WordProb = "prefix",
    top_k: int = 5,
    energy: bool = False,
    batch_size: int = 16,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Per prompt and layer: ``p_target``, ``p_<latent>``, ``entropy_bits``, ``target_rank``,
    ``top_tokens`` and optionally ``energy`` (columns in ``LENS_COLUMNS``). With ``run`` (a results-store run), finished
    batches are stored as they complete and skipped on a re-run."""
    if word_prob not in ("prefix", "chain"):
        raise ValueError(f"word_prob must be 'prefix' or 'chain', not {word_prob!r}")
    examples, dropped = _prepare(backend, prompts, word_prob)
    examples = sorted(examples, key=lambda e: len(e.ids))  # similar lengths: little padding
    gram = functools.cache(backend.unembedding_gram)  # computed once, and only if a batch needs it

    def compute(batch: list[_Encoded]) -> pd.DataFrame:
        with torch.no_grad():
            return _batch_rows(backend, batch, word_prob, top_k, gram() if energy else None)

    table = collect(
        examples,
        compute,
        key=lambda e: e.prompt.item,
        columns=list(LENS_COLUMNS),
        run=run,
        batch_size=batch_size,
        desc=f"lens {backend.model_name}",
        unit="prompt",
        progress=progress,
    )
    table.attrs["dropped_examples"] = dropped
    return table
