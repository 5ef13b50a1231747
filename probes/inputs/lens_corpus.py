"""Text for fitting and evaluating lenses (``pivotlens fit-lens`` and ``pivotlens lens-eval``).

By default lenses are fitted on the accumulation part of ``data/sentences.csv`` (12 languages,
220 parallel sentences each) plus ``data/instructions.csv`` (instruction and response, 120 per
language), and evaluated on the held-out part of ``data/sentences.csv`` (the split by sentence
id of :mod:`probes.inputs.lm_corpus`, so no translation of a held-out sentence is fitted on); see
``data/INSTRUCTIONS.md``, section "As a lens corpus". A user corpus
is a CSV with the header ``lang,text`` (or ``id,lang,text``), used whole.

Languages are balanced by tokens: each language contributes the same number of tokens (the
``--tokens`` budget split evenly, or by default as many as the smallest language has).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language
from probes.inputs.instruction_data import load_instructions
from probes.inputs.lm_corpus import SENTENCES, load_corpus

TEXT_HEADER = ["lang", "text"]


def load_text_corpus(path: str | Path) -> dict[str, list[str]]:
    """``{lang: [text, ...]}`` from a ``lang,text`` or ``id,lang,text`` CSV; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass a CSV with the columns lang,text")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if rows and rows[0] == ["id", "lang", "text"]:
        corpus = load_corpus(path)
        return {lang: corpus.texts(lang) for lang in corpus.langs}
    if not rows or rows[0] != TEXT_HEADER:
        found = ",".join(rows[0]) if rows else "nothing"
        raise DataFormatError(f"{path}:1: header must be lang,text (or id,lang,text), found {found}")
    texts: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise DataFormatError(f"{path}:{line}: {len(row)} fields, expected 2 (lang,text); quote texts with commas")
        lang, text = (cell.strip() for cell in row)
        if not text:
            raise DataFormatError(f"{path}:{line}, column 2: empty text")
        try:
            get_language(lang)
        except KeyError as exc:
            raise DataFormatError(f"{path}:{line}, column 1: {exc}") from None
        texts.setdefault(lang, []).append(text)
    return texts


def fitting_texts() -> dict[str, list[str]]:
    """The shipped fitting text: the accumulation part of ``data/sentences.csv`` and every
    instruction + response of ``data/instructions.csv`` (12 languages each)."""
    corpus = load_corpus(SENTENCES)
    texts = {lang: corpus.texts(lang, "accumulation") for lang in corpus.langs}
    for row in load_instructions().itertuples(index=False):
        texts.setdefault(str(row.lang), []).append(f"{row.instruction}\n{row.response}")
    return texts


def heldout_texts() -> dict[str, list[str]]:
    """The shipped evaluation text: the held-out part of ``data/sentences.csv``."""
    corpus = load_corpus(SENTENCES)
    return {lang: corpus.texts(lang, "heldout") for lang in corpus.langs}


def select_languages(texts: Mapping[str, list[str]], langs: Sequence[str] | None, source: str) -> dict[str, list[str]]:
    if not langs:
        return dict(texts)
    missing = [lang for lang in langs if lang not in texts]
    if missing:
        raise DataFormatError(f"{source}: no text in {', '.join(missing)}; it has {', '.join(texts)}")
    return {lang: texts[lang] for lang in langs}


def balanced_rows(
    tokenize: Callable[[str], list[int]], texts: Mapping[str, list[str]], tokens: int | None = None, max_len: int = 128
) -> dict[str, list[list[int]]]:
    """Token rows per language, each language cut at the same token count: ``tokens`` split
    evenly, or (``None``) the smallest language's total. Texts are taken in file order."""
    rows = {lang: [tokenize(t)[:max_len] for t in items] for lang, items in texts.items()}
    totals = {lang: sum(len(r) for r in lang_rows) for lang, lang_rows in rows.items()}
    quota = min(totals.values()) if tokens is None else tokens // len(rows)
    out: dict[str, list[list[int]]] = {}
    for lang, lang_rows in rows.items():
        kept, count = [], 0
        for row in lang_rows:
            if count >= quota:
                break
            kept.append(row[: quota - count])
            count += len(kept[-1])
        out[lang] = [r for r in kept if len(r) >= 2]
    return out
