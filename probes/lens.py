"""Latent-language logit lens (Wendler et al. 2024, "Do Llamas Work in English?"; docs/methods/latent-language.md).

For each prompt, at the answer position, at every layer ``l``: ``p_l = softmax(U · norm(h_l))``
with the model's own final norm and unembedding. ``P(lang)`` is the sum of ``p_l`` over the
word's token-id set (Wendler's prefix rule) or the chain probability of the whole word
teacher-forced through the lens (:meth:`probes.backend.base.Backend.chain_log_probs`, summed in
log space and exponentiated in float64, so a long chain does not underflow to 0).
``word_prob="auto"`` (default) uses the prefix set where it identifies the word
(:meth:`probes.backend.tokensets.TokenSets.units`) and the chain where it does not, on both
sides of the prompt (:func:`probes.backend.tokensets.scoring_kind`): when the target is scored
by its chain, so is the latent word. Entropy is in bits over the full vocabulary.

Dropped before the lens, counted per run in ``n_dropped_copy`` and ``n_dropped_degenerate``:
prompts whose target shares its first scored token with the source word or with a
demonstration's answer (the model could copy it from the prompt), and prompts whose target and
latent words cannot be told apart (Wendler's filter) or, under ``word_prob="prefix"``, whose
prefix set does not identify the word.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch

from probes.backend import Backend, LensRequest
from probes.backend.base import LensRead, LensReadout, chain_reads
from probes.backend.lenses import LOGIT, Lens
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.backend.tokensets import TokenSets, scoring_kind, share_first_unit
from probes.inputs.prompts import LensPrompt
from probes.registry import register_probe

WordProb = Literal["auto", "prefix", "chain"]

LENS_COLUMNS = {
    "task": "translation, repetition or cloze",
    "src_lang": "language of the prompt's source words (= lang for repetition and cloze)",
    "lang": "target language: the answer is the concept's word in this language",
    "latent": "latent language whose word probability is p_<latent> (default en)",
    "concept": "concept id from the word list",
    "layer": "0-based block index; the last layer is the model's own output",
    "shots": "number of demonstrations in the prompt",
    "word_prob": "how both words of the prompt were scored: prefix (token-set sum) or chain (whole-word probability)",
    "n_dropped_copy": (
        "prompts of this run dropped because the target shares a token with the source word or a demonstration's answer"
    ),
    "n_dropped_degenerate": (
        "prompts of this run dropped because target and latent words share a token "
        "(or, under prefix, a set does not identify its word)"
    ),
    "lens": "lens that decoded the layer: logit, linear, tuned, linear-en, ... (probes/backend/lenses.py)",
    "p_target": "probability of the target word at this layer (prefix-set sum or chain probability)",
    "p_<latent>": "probability of the latent-language word (p_en by default), same rule",
    "entropy_bits": "entropy of the layer's next-token distribution over the full vocabulary, in bits",
    "target_rank": "rank of the best-ranked token of the target set (0 = top-1)",
    "top_tokens": "the layer's top-k next tokens, decoded",
    "energy": "token energy of the residual (Wendler et al.; only with energy=True)",
    "item": "run key of the prompt (task|src|lang|latent|concept)",
}


@dataclass(frozen=True)
class _Encoded:
    prompt: LensPrompt
    ids: list[int]
    kind: str  # "prefix" or "chain", the same for both words
    target: list[int]  # prefix-rule token set, or the word's chain
    latent: list[int]


def _word_units(
    sets: TokenSets, prompts: Sequence[LensPrompt], vocabularies: Mapping[str, Sequence[str]] | None
) -> dict:
    """``(lang, word) -> WordUnit`` over each language's whole word list (``vocabularies``; by
    default the words the prompts use), so that a set shared by two concepts is seen."""
    words: dict[str, set[str]] = {lang: set(ws) for lang, ws in (vocabularies or {}).items()}
    for p in prompts:
        words.setdefault(p.lang, set()).update((p.target_word, *p.demo_answers))
        words.setdefault(p.latent_lang, set()).add(p.latent_word)
        if p.source_word:
            words.setdefault(p.src_lang, set()).add(p.source_word)
    return {(lang, w): unit for lang, ws in words.items() for w, unit in sets.units(ws).items()}


def _prepare(
    backend: Backend,
    prompts: Sequence[LensPrompt],
    word_prob: WordProb,
    *,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
    drop_copies: bool = True,
) -> tuple[list[_Encoded], Counter]:
    """Tokenize prompts and choose each prompt's scoring unit; drop the prompts the lens cannot
    read (see the module docstring). Returns the kept examples and the drop counts by reason."""
    sets = backend.token_sets
    units = _word_units(sets, prompts, vocabularies)
    kept, dropped = [], Counter(copy=0, degenerate=0)
    for prompt in prompts:
        target, latent = (
            units[(prompt.lang, prompt.target_word.strip())],
            units[(prompt.latent_lang, prompt.latent_word.strip())],
        )
        rule = scoring_kind(target, latent)
        kind = rule if word_prob == "auto" else word_prob
        if (kind == "prefix" and rule == "chain") or (
            prompt.lang != prompt.latent_lang and share_first_unit(target, latent, kind)
        ):
            dropped["degenerate"] += 1
            continue
        copied = [units[(prompt.lang, a.strip())] for a in prompt.demo_answers]
        if prompt.source_word and prompt.src_lang != prompt.lang:
            copied.append(units[(prompt.src_lang, prompt.source_word.strip())])
        if drop_copies and any(share_first_unit(target, other, kind) for other in copied):
            dropped["copy"] += 1
            continue
        if kind == "chain":
            ids = (sets.chain(prompt.target_word), sets.chain(prompt.latent_word))
        else:
            ids = (sorted(target.prefix_set), sorted(latent.prefix_set))
        kept.append(_Encoded(prompt, backend.tokenize(prompt.text), kind, *ids))
    return kept, dropped


def _pad(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [-1] * (width - len(r)) for r in rows], dtype=torch.long)


def _batch_rows(
    backend: Backend, batch: Sequence[_Encoded], top_k: int, gram: torch.Tensor | None, dropped: Counter, lens: Lens
) -> pd.DataFrame:
    """Rows of one batch of examples that share their scoring kind: prefix-scored prompts in one
    pass; chain-scored ones each on its own (:func:`_chain_readout`)."""
    if batch[0].kind == "chain":
        frames = [_records([e], *_chain_readout(backend, e, top_k, gram, lens), dropped, backend, lens) for e in batch]
        return pd.concat(frames, ignore_index=True)
    enc = backend.encode([e.ids for e in batch])
    n_target = [len(e.target) for e in batch]
    ids = _pad([e.target + e.latent for e in batch])
    is_target = torch.arange(ids.shape[1]).unsqueeze(0) < torch.tensor(n_target).unsqueeze(1)  # [B, n]
    request = LensRequest(token_ids=ids, rank_group=is_target, top_k=top_k, energy_gram=gram)
    readout = backend.lens(enc, request, positions=[-1], lens=lens)
    probs = readout.require("probs_at_ids")[:, :, 0]  # [L, B, n]
    p_target = (probs * is_target).sum(-1)
    p_latent = (probs * (~is_target & (ids >= 0))).sum(-1)
    return _records(batch, readout, p_target, p_latent, dropped, backend, lens)


def _chain_readout(
    backend: Backend, example: _Encoded, top_k: int, gram: torch.Tensor | None, lens: Lens
) -> tuple[LensReadout, torch.Tensor, torch.Tensor]:
    """The next-token readout at the answer position and both words' chain probabilities
    (``[layer, 1]`` each) of one chain-scored prompt, from one short pass: the prompt but its
    last token is encoded once as a cached prefix (:meth:`Backend.shared_prefix`), then two rows
    run after it, the last token followed by the target word's tokens and by the latent word's
    (teacher forcing, :func:`chain_reads`). The prompt is not run three times, once per word and
    once for the readout, which cost three passes over a long few-shot prompt."""
    *context, last = example.ids
    chains = chain_reads([[last], [last]], [example.target, example.latent])
    ids = torch.tensor([example.target])
    request = LensRequest(
        token_ids=ids, rank_group=torch.ones_like(ids, dtype=torch.bool), top_k=top_k, energy_gram=gram
    )
    answer = LensRead(request, positions=(-len(chains.rows[0]),), rows=[0])  # the prompt's last token, in row 0
    enc = backend.encode_after(backend.shared_prefix(context), chains.rows)
    readout, chained = backend.lens_reads(enc, [answer, chains.read], lens=lens)
    p_words = chains.log_probs(chained).exp()  # [L, 2]
    return readout, p_words[:, :1], p_words[:, 1:]


def _records(
    batch: Sequence[_Encoded],
    readout: LensReadout,
    p_target: torch.Tensor,
    p_latent: torch.Tensor,
    dropped: Counter,
    backend: Backend,
    lens: Lens,
) -> pd.DataFrame:
    """Tidy rows (prompt, layer) of ``batch`` from its readout and words' probabilities ``[layer, batch]``."""
    target_rank = readout.require("group_rank")[:, :, 0]
    top_ids = readout.require("top_ids")
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
                    "shots": prompt.shots,
                    "word_prob": example.kind,
                    "n_dropped_copy": dropped["copy"],
                    "n_dropped_degenerate": dropped["degenerate"],
                    "lens": lens.name,
                    "p_target": float(p_target[li, b]),
                    f"p_{prompt.latent_lang}": float(p_latent[li, b]),
                    "entropy_bits": float(readout.entropy_bits[li, b, 0]),
                    "target_rank": int(target_rank[li, b]),
                    "top_tokens": decode(top_ids[li, b, 0].tolist()),
                    "item": prompt.item,
                }
            )
            if readout.energy is not None:  # asked for with the gram
                records[-1]["energy"] = float(readout.energy[li, b, 0])
    return pd.DataFrame.from_records(records)


@register_probe("lens", paper="Wendler et al. 2024, Sec. 3; PROM footnote 3", columns=LENS_COLUMNS, version=3)
def run_lens(
    backend: Backend,
    prompts: Sequence[LensPrompt],
    *,
    word_prob: WordProb = "auto",
    top_k: int = 5,
    energy: bool = False,
    lens: Lens = LOGIT,
    batch_size: int = 16,
    run: Run | None = None,
    progress: bool = True,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
    drop_copies: bool = True,
) -> pd.DataFrame:
    """Per prompt and layer: ``p_target``, ``p_<latent>``, ``entropy_bits``, ``target_rank``,
    ``top_tokens`` and optionally ``energy`` (columns in ``LENS_COLUMNS``), each layer decoded by
    ``lens`` (the logit lens by default; :func:`probes.backend.lenses.load_lens`). With ``run`` (a
    results-store run), finished batches are stored as they complete and skipped on a re-run.
    ``vocabularies`` (language -> its whole word list) lets the unit rule see every concept of a
    language when ``prompts`` is a subset; ``drop_copies=False`` keeps the prompts a model could
    answer by copying."""
    if word_prob not in ("auto", "prefix", "chain"):
        raise ValueError(f"word_prob must be 'auto', 'prefix' or 'chain', not {word_prob!r}")
    examples, dropped = _prepare(backend, prompts, word_prob, vocabularies=vocabularies, drop_copies=drop_copies)
    # one scoring kind per forward pass, similar lengths together: little padding
    examples = sorted(examples, key=lambda e: (e.kind, len(e.ids)))
    gram = functools.cache(backend.unembedding_gram)  # computed once, and only if a batch needs it

    def compute(batch: list[_Encoded]) -> pd.DataFrame:
        kinds = [[e for e in batch if e.kind == kind] for kind in ("prefix", "chain")]
        with torch.no_grad():
            frames = [
                _batch_rows(backend, part, top_k, gram() if energy else None, dropped, lens) for part in kinds if part
            ]
        return pd.concat(frames, ignore_index=True)

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
    table.attrs["dropped_examples"] = dict(dropped)
    return table
