"""Prompts for the latent-language tasks (Wendler et al. 2024, spec 1.4): few-shot translation,
repetition (translation with source = target) and cloze."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from probes.backend.languages import get_language

Task = Literal["translation", "repetition", "cloze"]


@dataclass(frozen=True)
class LensPrompt:
    """One prompt whose next token should start ``target_word``; ``latent_word`` is its
    translation in the latent language (English by default)."""

    task: str
    src_lang: str
    lang: str
    latent_lang: str
    concept: str
    text: str
    target_word: str
    latent_word: str

    @property
    def item(self) -> str:
        return f"{self.task}|{self.src_lang}|{self.lang}|{self.latent_lang}|{self.concept}"


def translation_prompts(
    concepts: pd.DataFrame, src: str, tgt: str, *, latent: str = "en", shots: int = 4, seed: int = 42
) -> list[LensPrompt]:
    """``{Src}: "w_src" - {Tgt}: "w_tgt"`` lines, ``shots`` demonstrations drawn from the other
    concepts, the query ending after the opening quote (no trailing space). Rows whose latent
    word is a substring of the target word are dropped (target != latent), as in the original."""
    for code in (src, tgt, latent):
        get_language(code)
        if code not in concepts.columns:
            raise KeyError(f"the word list has no column {code!r}; its languages are {list(concepts.columns[1:])}")
    rows = concepts
    if tgt != latent:
        keep = [lat.lower() not in t.lower() for lat, t in zip(rows[latent], rows[tgt])]
        rows = rows[keep].reset_index(drop=True)
    src_name, tgt_name = get_language(src).native, get_language(tgt).native
    rng = np.random.default_rng(seed)
    task = "repetition" if src == tgt else "translation"
    prompts = []
    for i, row in rows.iterrows():
        others = rng.choice(np.delete(np.arange(len(rows)), i), size=min(shots, len(rows) - 1), replace=False)
        demos = "".join(f'{src_name}: "{rows.at[j, src]}" - {tgt_name}: "{rows.at[j, tgt]}"\n' for j in others)
        text = demos + f'{src_name}: "{row[src]}" - {tgt_name}: "'
        prompts.append(LensPrompt(task, src, tgt, latent, row["concept"], text, row[tgt], row[latent]))
    return prompts


def cloze_prompts(
    concepts: pd.DataFrame, cloze: pd.DataFrame, lang: str, *, latent: str = "en", shots: int = 2, seed: int = 42
) -> list[LensPrompt]:
    """Definition sentences with the word masked as ``"___"``: ``shots`` demonstrations with their
    answer, then the query ending in ``{Answer}: "``. One consistent format per language (the
    original's zh file mixed full-width and ASCII colons)."""
    language = get_language(lang)
    sentences = cloze[cloze["lang"] == lang].merge(concepts[["concept", lang, latent]], on="concept")
    if sentences.empty:
        raise KeyError(f"no cloze sentences for {lang!r}; languages with cloze data: {sorted(set(cloze['lang']))}")
    sentences = sentences.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    prompts = []
    for i, row in sentences.iterrows():
        others = rng.choice(np.delete(np.arange(len(sentences)), i), size=min(shots, len(sentences) - 1), replace=False)
        demos = "".join(
            f'{sentences.at[j, "sentence"]} {language.answer}: "{sentences.at[j, lang]}".\n' for j in others
        )
        text = demos + f'{row["sentence"]} {language.answer}: "'
        prompts.append(LensPrompt("cloze", lang, lang, latent, row["concept"], text, row[lang], row[latent]))
    return prompts


def build_prompts(
    task: Task,
    concepts: pd.DataFrame,
    lang: str,
    *,
    src: str | None = None,
    latent: str = "en",
    cloze: pd.DataFrame | None = None,
    seed: int = 42,
) -> list[LensPrompt]:
    """Prompts for one target language. Translation defaults to French as the source (German
    when the target is French), so that neither the target nor the latent word is in the prompt."""
    if task == "cloze":
        if cloze is None:
            raise ValueError("the cloze task needs cloze sentences")
        return cloze_prompts(concepts, cloze, lang, latent=latent, seed=seed)
    if task == "repetition":
        return translation_prompts(concepts, lang, lang, latent=latent, seed=seed)
    if task != "translation":
        raise ValueError(f"unknown task {task!r}; use translation, repetition or cloze")
    source = src or default_source(lang, latent)
    return translation_prompts(concepts, source, lang, latent=latent, seed=seed)


def default_source(lang: str, latent: str = "en") -> str:
    return next(code for code in ("fr", "de", "es") if code not in (lang, latent))
