"""Parallel instruction data and parallel sentences, and (prompt, response) pairs turned into
training batches (input ids with labels on the response tokens only).

Formats (``data/instructions.csv``, ``data/sentences.csv``, or any file a user brings):

* instructions: ``id,lang,instruction,response``, one row per (id, language); the same id in
  several languages is one instruction and its translations (PROM's ``s_e`` and ``s_t``).
* sentences: ``id,lang,text``, the same layout for plain parallel sentences.

Cells may span several lines (quoted CSV); errors name the file, the physical line where the
record starts, and the column. The last ``HELD_OUT`` ids (in file order) are held out from
training by convention (:func:`split_held_out`).

Batches: :func:`tokenize_pair` formats one pair with the tokenizer's chat template when it has
one (user turn = prompt, assistant turn = response), else as ``prompt\\n\\nresponse<eos>``;
labels are ``-100`` on the prompt, so the loss is the response's. :func:`collate` left-pads
rows into an :class:`~probes.backend.base.Encoded` batch, the padding policy of every backend.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from probes.backend.base import Encoded, encode_ids
from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language
from probes.inputs import DATA_DIR

INSTRUCTIONS = DATA_DIR / "instructions.csv"
SENTENCES = DATA_DIR / "sentences.csv"
INSTRUCTION_COLUMNS = ("id", "lang", "instruction", "response")
SENTENCE_COLUMNS = ("id", "lang", "text")
HELD_OUT = 20  # the last 20 ids of the instruction set are evaluation data, never trained on
PLAIN_SEPARATOR = "\n\n"

Template = Literal["auto", "chat", "plain"]
TEMPLATES: tuple[str, ...] = ("auto", "chat", "plain")


def _read(path: str | Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Read and validate a long parallel CSV; adds ``line`` (where each record starts)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass a CSV of {what} with columns {','.join(columns)}")
    records: list[list[str]] = []
    lines: list[int] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: the file is empty; it needs the header {','.join(columns)}")
        if [h.strip() for h in header] != list(columns):
            raise DataFormatError(f"{path}:1: the header must be {','.join(columns)} (found {','.join(header)})")
        start = reader.line_num + 1
        for row in reader:
            if row:  # blank lines between records are allowed
                records.append(row)
                lines.append(start)
            start = reader.line_num + 1
    seen: dict[tuple[str, str], int] = {}
    checked_langs: set[str] = set()
    for line, row in zip(lines, records):
        if len(row) != len(columns):
            raise DataFormatError(
                f"{path}:{line}: {len(row)} fields, the header has {len(columns)} ({','.join(columns)})"
            )
        for index, (name, cell) in enumerate(zip(columns, row), start=1):
            if not cell.strip():
                raise DataFormatError(f"{path}:{line}, column {index} ({name}): empty cell")
        lang = row[1].strip()
        if lang not in checked_langs:
            try:
                get_language(lang)
            except KeyError as exc:
                raise DataFormatError(f"{path}:{line}, column 2 (lang): {exc}") from None
            checked_langs.add(lang)
        key = (row[0].strip(), lang)
        if key in seen:
            raise DataFormatError(f"{path}:{line}: id {key[0]!r} in {lang!r} already on line {seen[key]}")
        seen[key] = line
    table = pd.DataFrame(records, columns=list(columns))
    table["id"] = table["id"].str.strip()
    table["lang"] = table["lang"].str.strip()
    table["line"] = lines
    return table


def _select(table: pd.DataFrame, langs: Iterable[str] | None, path: str | Path) -> pd.DataFrame:
    if langs is None:
        return table.reset_index(drop=True)
    wanted = list(langs)
    missing = [lang for lang in wanted if lang not in set(table["lang"])]
    if missing:
        raise DataFormatError(f"{path} has no rows in {missing}; it has {sorted(set(table['lang']))}")
    return table[table["lang"].isin(wanted)].reset_index(drop=True)


def load_instructions(path: str | Path = INSTRUCTIONS, langs: Iterable[str] | None = None) -> pd.DataFrame:
    """The instruction set (``id, lang, instruction, response, line``), optionally for ``langs``."""
    return _select(_read(path, INSTRUCTION_COLUMNS, "parallel instructions"), langs, path)


def load_sentences(path: str | Path = SENTENCES, langs: Iterable[str] | None = None) -> pd.DataFrame:
    """The parallel sentences (``id, lang, text, line``), optionally for ``langs``."""
    return _select(_read(path, SENTENCE_COLUMNS, "parallel sentences"), langs, path)


def ordered_ids(table: pd.DataFrame) -> list[str]:
    """Ids in order of first appearance."""
    return list(dict.fromkeys(table["id"]))


def split_held_out(table: pd.DataFrame, n_held_out: int = HELD_OUT) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, held_out)``: the last ``n_held_out`` ids in file order are held out."""
    ids = ordered_ids(table)
    if n_held_out >= len(ids):
        raise DataFormatError(f"only {len(ids)} ids; cannot hold out {n_held_out} and keep any for training")
    held = set(ids[len(ids) - n_held_out :]) if n_held_out else set()
    mask = table["id"].isin(held)
    return table[~mask].reset_index(drop=True), table[mask].reset_index(drop=True)


def parallel_ids(table: pd.DataFrame, langs: Sequence[str]) -> list[str]:
    """Ids present in every language of ``langs``, in file order."""
    per_lang = [set(table.loc[table["lang"] == lang, "id"]) for lang in langs]
    common = set.intersection(*per_lang) if per_lang else set()
    return [i for i in ordered_ids(table) if i in common]


def pairs_for(table: pd.DataFrame, lang: str, ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(instruction, response)`` pairs of ``lang`` in the order of ``ids``."""
    rows = table[table["lang"] == lang].set_index("id")
    missing = [i for i in ids if i not in rows.index]
    if missing:
        raise DataFormatError(
            f"ids {missing[:5]} have no {lang!r} row; use parallel_ids() to pick ids every language has"
        )
    return [(str(rows.at[i, "instruction"]), str(rows.at[i, "response"])) for i in ids]


@dataclass(frozen=True)
class TokenizedExample:
    """One training row: ``labels`` is ``input_ids`` with ``-100`` where no loss is taken."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_scored(self) -> int:
        return sum(label != -100 for label in self.labels)


def _tokens(tokenizer, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _chat_parts(tokenizer, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Prompt ids up to the assistant turn's start, and the assistant turn's ids (with the
    template's end-of-turn marker), from the rendered template."""
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
    if not full.startswith(head):
        raise DataFormatError(
            "the tokenizer's chat template does not render the prompt as a prefix of prompt + response; "
            "use template='plain'"
        )
    # the rendered text carries its own special tokens (e.g. <bos>): do not add them twice
    return _tokens(tokenizer, head, special=False), _tokens(tokenizer, full[len(head) :], special=False)


def _plain_parts(tokenizer, prompt: str, response: str) -> tuple[list[int], list[int]]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return _tokens(tokenizer, prompt + PLAIN_SEPARATOR, special=True), _tokens(tokenizer, response, special=False) + eos


def uses_chat_template(tokenizer, template: Template = "auto") -> bool:
    """Whether ``template`` resolves to the chat template for this tokenizer."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; use one of {', '.join(TEMPLATES)}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise DataFormatError(f"{type(tokenizer).__name__} has no chat template; use template='plain' or 'auto'")
    return template == "chat" or (template == "auto" and has_chat)


def tokenize_pair(
    tokenizer,
    prompt: str,
    response: str,
    *,
    template: Template = "auto",
    max_length: int | None = None,
    loss_on_prompt: bool = False,
) -> TokenizedExample:
    """One (prompt, response) pair as ``input_ids`` and ``labels`` (response tokens only unless
    ``loss_on_prompt``). ``max_length`` cuts the sequence from the right."""
    parts = _chat_parts if uses_chat_template(tokenizer, template) else _plain_parts
    prompt_ids, response_ids = parts(tokenizer, prompt, response)
    ids = prompt_ids + response_ids
    labels = (list(prompt_ids) if loss_on_prompt else [-100] * len(prompt_ids)) + response_ids
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    example = TokenizedExample(ids, labels)
    if example.n_scored == 0:
        raise ValueError(
            f"no response token left within max_length={max_length} (prompt has {len(prompt_ids)} tokens); "
            "raise max_length or shorten the prompt"
        )
    return example


def tokenize_pairs(tokenizer, pairs: Iterable[tuple[str, str]], **options) -> list[TokenizedExample]:
    """:func:`tokenize_pair` for each pair (options as there)."""
    return [tokenize_pair(tokenizer, prompt, response, **options) for prompt, response in pairs]


def pad_id(tokenizer) -> int:
    """The padding id every backend uses: pad, else eos, else 0."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad if pad is not None else 0)


def collate(examples: Sequence[TokenizedExample], pad: int) -> tuple[Encoded, torch.Tensor]:
    """Left-padded batch and its ``[batch, seq]`` labels (``-100`` on padding)."""
    if not examples:
        raise ValueError("an empty batch; pass at least one example")
    enc = encode_ids([e.input_ids for e in examples], pad)
    width = enc.input_ids.shape[1]
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        if example.labels:
            labels[row, width - len(example.labels) :] = torch.as_tensor(example.labels, dtype=torch.long)
    return enc, labels
