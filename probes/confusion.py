"""Language confusion: generate, record the next-token distribution per step, find confusion
points (Marchisio et al. 2024 §5 and Table 7; confusion-point rule of Nie et al. 2025,
``generate_cp.py``; docs/methods/language-confusion.md).

Per generated step ``t`` the backend records the model's raw next-token distribution ``p_t``
(before temperature and top-p): its entropy ``H(p_t) = -sum p log2 p`` in **bits**, and its
nucleus size, the smallest ``k`` whose top-``k`` probabilities sum to at least ``p_nuc``
(0.75, the benchmark's sampling p). The completion is judged as the benchmark does
(:func:`probes.language_id.judge`). For a completion whose judgement is a line error (full or
partial; Nie et al.), the **confusion point** is the first generated token that, decoded alone
and stripped, is neither empty nor a punctuation mark and

* for zh: starts with an ASCII letter;
* for every other language: starts with an ASCII letter and fastText labels it ``en``
  (score > 0.3).

Completions whose target is English have no confusion point (the rule looks for English).
Steps after the completion's end (EOS, or the ``"\\nQ:"`` where a base model starts the next
question, cut by the benchmark's normalisation) are kept with ``in_completion = False`` and
never hold a confusion point.

:func:`run_confusion_lens` then reads the logit lens at each confusion point: the prompt plus
the generated prefix, teacher-forced, and every layer's distribution over the next token
(which the model's output turned into the confusion-point token).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from tqdm.auto import tqdm

from probes.backend import Backend, LensRequest
from probes.backend.lenses import LOGIT, Lens
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.inputs.confusion_data import ConfusionPrompt, Demo, few_shot_turns, turns_to_prompt
from probes.language_id import ErrorType, judge, langid
from probes.registry import register_probe

PromptFormat = Literal["qa", "chat"]
CP_ERROR_TYPES: tuple[ErrorType, ...] = ("full_error", "partial_error")
_PUNCTUATION = set(string.punctuation + "–")
_ASCII_LETTERS = set(string.ascii_letters)

CONFUSION_COLUMNS = {
    "item": "run key of the prompt (task|source|language|row)",
    "model": "model name",
    "task": "monolingual or crosslingual",
    "source": "data source of the prompt (pivotlens_authored, okapi, ...)",
    "lang": "expected answer language (ISO 639-1)",
    "row": "index of the prompt among its (task, source, lang) rows: the benchmark output's id",
    "step": "0-based index of the generated token",
    "token_id": "generated token id",
    "token": "the generated token decoded alone",
    "entropy_bits": "entropy of the model's raw next-token distribution at this step, in bits",
    "nucleus_size": "smallest k whose top-k probabilities sum to at least nucleus_p (0.75)",
    "top_prob": "probability of the most likely next token",
    "p_token": "probability the raw distribution gave the generated token (0 if outside its top-k)",
    "top_tokens": "the raw distribution's 5 most likely next tokens (tokenizer pieces)",
    "in_completion": "the token is part of the completion (before EOS and before a '\\nQ:' cut)",
    "is_confusion_point": "first token where the output switches to English (Nie et al. 2025 rule)",
    "error_type": "benchmark judgement of the completion: correct, word_error, partial_error, full_error, skipped",
    "has_cp": "the completion has a confusion point",
    "completion": "the generated text (special tokens removed)",
    "input": "the rendered prompt the model saw (with few-shot demonstrations)",
}

CONFUSION_LENS_COLUMNS = {
    "item": "run key of the prompt (task|source|language|row)",
    "model": "model name",
    "task": "monolingual or crosslingual",
    "lang": "expected answer language",
    "step": "generated index of the confusion-point token",
    "cp_token": "the confusion-point token, decoded",
    "layer": "0-based block index; the last layer is the model's own output",
    "lens": "lens that decoded the layer: logit, linear, tuned, ... (probes/backend/lenses.py)",
    "p_cp_token": "lens probability of the confusion-point token at this layer",
    "cp_token_rank": "rank of the confusion-point token at this layer (0 = top-1)",
    "entropy_bits": "entropy of the layer's next-token distribution, in bits",
    "top_tokens": "the layer's top-k next tokens, decoded",
}


@dataclass(frozen=True)
class Rendered:
    prompt: ConfusionPrompt
    text: str
    ids: list[int]


def render(
    backend: Backend,
    prompt: ConfusionPrompt,
    *,
    shots: int = 0,
    prompt_format: PromptFormat = "qa",
    demos: Sequence[Demo] | None = None,
) -> Rendered:
    """The model input: ``Q:``/``A:`` turns (``turns_to_prompt``, the benchmark's format for base models)
    or the tokenizer's chat template (``prompt_format="chat"``), with ``shots`` demonstrations."""
    turns = few_shot_turns(prompt, shots, demos)
    if prompt_format == "qa":
        text = turns_to_prompt(turns)
        return Rendered(prompt, text, backend.tokenize(text))
    if prompt_format != "chat":
        raise ValueError(f"prompt_format must be 'qa' or 'chat', not {prompt_format!r}")
    if not getattr(backend.tokenizer, "chat_template", None):
        raise ValueError(f"{backend.model_name} has no chat template; use prompt_format='qa'")
    messages = [{"role": "user" if role == "User" else "assistant", "content": msg} for role, msg in turns]
    text = backend.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return Rendered(prompt, text, backend.tokenize(text, add_special_tokens=False))


def is_english_switch(piece: str, lang: str) -> bool:
    """Nie et al.'s test of one decoded, stripped token (``generate_cp.py``)."""
    if not piece or piece in _PUNCTUATION or piece[0] not in _ASCII_LETTERS:
        return False
    return lang == "zh" or langid(piece) == "en"


def confusion_point(pieces: Sequence[str], lang: str) -> int | None:
    """Index of the first token of ``pieces`` (tokens decoded one by one) where the output
    switches to English, or ``None``."""
    for index, piece in enumerate(pieces):
        if is_english_switch(piece.strip(), lang):
            return index
    return None


def completion_extent(backend: Backend, new_ids: Sequence[int]) -> tuple[str, int, int]:
    """``(completion, n_generated, n_in_completion)``: the text up to the first special token
    (EOS), how many tokens were really generated (through that EOS), and how many of them lie
    before the benchmark's ``"\\nQ:"`` cut."""
    special = set(backend.tokenizer.all_special_ids)
    end = next((i for i, t in enumerate(new_ids) if t in special), len(new_ids))
    ids = list(new_ids[:end])
    completion = backend.tokenizer.decode(ids, skip_special_tokens=True)
    cut = completion.find("\nQ:")
    kept = end
    if cut >= 0:
        kept = next(
            i for i in range(end + 1) if len(backend.tokenizer.decode(ids[: i + 1], skip_special_tokens=True)) > cut
        )
    return completion, min(end + 1, len(new_ids)), kept


def _step_rows(
    backend: Backend, item: Rendered, gen_row: dict[str, torch.Tensor], cp_error_types: Sequence[str]
) -> list[dict]:
    new_ids = gen_row["new_ids"].tolist()
    completion, n_generated, n_kept = completion_extent(backend, new_ids)
    prompt = item.prompt
    judgement = judge(completion, prompt.language)
    pieces = [backend.tokenizer.decode([t], skip_special_tokens=False) for t in new_ids[:n_generated]]
    cp = None
    if judgement.error_type in cp_error_types and prompt.language != "en":
        cp = confusion_point(pieces[:n_kept], prompt.language)
    top_ids, top_probs = gen_row["top_ids"], gen_row["top_probs"]
    to_pieces = backend.tokenizer.convert_ids_to_tokens
    rows = []
    for step in range(n_generated):
        token_id = new_ids[step]
        match = (top_ids[step] == token_id).nonzero()
        rows.append(
            {
                "item": prompt.item,
                "model": backend.model_name,
                "task": prompt.task,
                "source": prompt.source,
                "lang": prompt.language,
                "row": prompt.row,
                "step": step,
                "token_id": token_id,
                "token": pieces[step],
                "entropy_bits": float(gen_row["entropy_bits"][step]),
                "nucleus_size": int(gen_row["nucleus_size"][step]),
                "top_prob": float(top_probs[step, 0]),
                "p_token": float(top_probs[step, match[0, 0]]) if len(match) else 0.0,
                "top_tokens": to_pieces(top_ids[step, :5].tolist()),
                "in_completion": step < n_kept,
                "is_confusion_point": step == cp,
                "error_type": judgement.error_type,
                "has_cp": cp is not None,
                "completion": completion,
                "input": item.text,
            }
        )
    return rows


@register_probe(
    "confusion",
    paper="Marchisio et al. 2024 §5, Table 7; Nie et al. 2025 (CP rule)",
    columns=CONFUSION_COLUMNS,
)
def run_confusion(
    backend: Backend,
    prompts: Sequence[ConfusionPrompt],
    *,
    shots: int = 0,
    prompt_format: PromptFormat = "qa",
    max_new_tokens: int = 100,
    temperature: float = 0.3,
    top_p: float = 0.75,
    num_beams: int = 1,
    nucleus_p: float = 0.75,
    top_k: int = 20,
    cp_error_types: Sequence[ErrorType] = CP_ERROR_TYPES,
    seed: int = 0,
    batch_size: int = 16,
    demos: Sequence[Demo] | None = None,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Generate a completion per prompt (the benchmark's defaults: T = 0.3, nucleus p = 0.75,
    at most 100 new tokens; ``temperature=0`` decodes greedily, ``num_beams > 1`` searches beams,
    with the statistics of the returned beam) and return one row per
    ``(prompt, step)`` (columns in ``CONFUSION_COLUMNS``). ``cp_error_types`` widens the
    confusion-point search, e.g. with ``"word_error"`` for word-level confusion (Marchisio et
    al.'s Table 7 counts English words inside Chinese answers). With ``run``, finished batches
    are stored as they complete and skipped on a re-run; the table holds ``prompts`` only."""
    if temperature < 0 or not 0 < top_p <= 1 or num_beams < 1:
        raise ValueError(
            f"need temperature >= 0, 0 < top_p <= 1, num_beams >= 1 (got {temperature}, {top_p}, {num_beams})"
        )
    wanted = {p.item for p in prompts}
    rendered = [render(backend, p, shots=shots, prompt_format=prompt_format, demos=demos) for p in prompts]
    rendered.sort(key=lambda r: (len(r.ids), r.prompt.item))  # similar lengths: little padding
    batch_index = itertools.count()  # the sampling seed of a batch: seed + its index among the batches computed

    def compute(batch: list[Rendered]) -> pd.DataFrame:
        generation = backend.generate(
            backend.encode([r.ids for r in batch]),
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else 1.0,
            top_p=top_p,
            num_beams=num_beams,
            nucleus_p=nucleus_p,
            top_k=top_k,
            seed=seed + next(batch_index),
        )
        rows = []
        for b, item in enumerate(batch):
            gen_row = {
                name: getattr(generation, name)[b]
                for name in ("new_ids", "entropy_bits", "nucleus_size", "top_ids", "top_probs")
            }
            rows += _step_rows(backend, item, gen_row, cp_error_types)
        return pd.DataFrame.from_records(rows, columns=list(CONFUSION_COLUMNS))

    table = collect(
        rendered,
        compute,
        key=lambda r: r.prompt.item,
        columns=list(CONFUSION_COLUMNS),
        run=run,
        batch_size=batch_size,
        desc=f"confusion {backend.model_name}",
        unit="prompt",
        progress=progress,
    )
    return table[table["item"].isin(wanted)].reset_index(drop=True) if len(table) else table


@register_probe(
    "confusion-lens",
    paper="logit lens at Marchisio et al.'s confusion points (Sec. 5; lens of Wendler et al. 2024)",
    columns=CONFUSION_LENS_COLUMNS,
    family="confusion",
)
def run_confusion_lens(
    backend: Backend,
    steps: pd.DataFrame,
    *,
    prompt_format: PromptFormat = "qa",
    layers: Sequence[int] | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    progress: bool = True,
    lens: Lens = LOGIT,
) -> pd.DataFrame:
    """At each confusion point of a :func:`run_confusion` table, the lens (``lens``, logit by default) over the
    teacher-forced prompt + generated prefix: per layer, the probability and rank of the
    confusion-point token, the entropy (bits) and the top tokens (columns in
    ``CONFUSION_LENS_COLUMNS``). ``prompt_format`` must be the one the steps were made with."""
    cps = steps[steps["is_confusion_point"]]
    records = []
    for _, group in steps[steps["item"].isin(cps["item"])].groupby("item", sort=False):
        cp = group[group["is_confusion_point"]].iloc[0]
        prefix = group.sort_values("step")["token_id"].tolist()[: int(cp["step"])]
        special = prompt_format == "qa"
        records.append((cp, backend.tokenize(cp["input"], add_special_tokens=special) + prefix))
    records.sort(key=lambda r: len(r[1]))
    decode = backend.tokenizer.convert_ids_to_tokens
    rows = []
    for start in tqdm(
        range(0, len(records), batch_size), desc=f"lens at CPs {backend.model_name}", disable=not progress
    ):
        batch = records[start : start + batch_size]
        enc = backend.encode([ids for _, ids in batch])
        token_ids = torch.tensor([[int(cp["token_id"])] for cp, _ in batch])
        request = LensRequest(token_ids=token_ids, rank_group=torch.ones_like(token_ids, dtype=torch.bool), top_k=top_k)
        readout = backend.lens(enc, request, layers=layers, positions=[-1], lens=lens)
        assert readout.probs_at_ids is not None and readout.group_rank is not None and readout.top_ids is not None
        for b, (cp, _) in enumerate(batch):
            for li, layer in enumerate(readout.layers):
                rows.append(
                    {
                        "item": cp["item"],
                        "model": backend.model_name,
                        "task": cp["task"],
                        "lang": cp["lang"],
                        "step": int(cp["step"]),
                        "cp_token": cp["token"],
                        "layer": layer,
                        "lens": lens.name,
                        "p_cp_token": float(readout.probs_at_ids[li, b, 0, 0]),
                        "cp_token_rank": int(readout.group_rank[li, b, 0]),
                        "entropy_bits": float(readout.entropy_bits[li, b, 0]),
                        "top_tokens": decode(readout.top_ids[li, b, 0].tolist()),
                    }
                )
    return pd.DataFrame.from_records(rows, columns=list(CONFUSION_LENS_COLUMNS))
