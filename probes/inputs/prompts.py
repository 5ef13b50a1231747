"""Prompts for the latent-language tasks (Wendler et al. 2024;
docs/methods/latent-language.md): few-shot translation, repetition
(translation with source = target) and cloze.

PROM (Lee et al., footnote 3) measures its per-language lambda on Wendler's cloze task,
translated, 5-shot: that is the default here (``task="cloze"``, ``shots=SHOTS``).

Demonstrations are drawn from the other concepts, never one whose answer starts with the same
character as the query's answer: the demonstrations' answers stand where the query's answer
goes, and a shared first token there would let the model copy instead of recall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd

from probes.backend.errors import TaskRequestError
from probes.backend.languages import get_language
from probes.inputs.words import CLOZE

Task = Literal["translation", "repetition", "cloze"]
SHOTS = 5  # PROM footnote 3: Wendler's cloze task, 5-shot


@dataclass(frozen=True)
class LensPrompt:
    """One prompt whose next token should start ``target_word``; ``latent_word`` is its
    translation in the latent language (English by default). ``source_word`` is the query's
    word in the source language (empty for cloze) and ``demo_answers`` the demonstrations'
    answers, the words a model could copy into the answer's position."""

    task: str
    src_lang: str
    lang: str
    latent_lang: str
    concept: str
    text: str
    target_word: str
    latent_word: str
    shots: int = 0
    source_word: str = ""
    demo_answers: tuple[str, ...] = ()

    @property
    def item(self) -> str:
        return f"{self.task}|{self.src_lang}|{self.lang}|{self.latent_lang}|{self.concept}"


def _demonstrations(rng: np.random.Generator, answers: list[str], query: int, shots: int) -> np.ndarray:
    """``shots`` other rows whose answer does not start like the query's answer (all other rows
    when too few qualify; the lens probe then drops the prompt as a copy)."""
    others = np.delete(np.arange(len(answers)), query)
    distinct = [j for j in others if answers[j][:1] != answers[query][:1]]
    pool = np.array(distinct) if len(distinct) >= shots else others
    return rng.choice(pool, size=min(shots, len(pool)), replace=False)


def translation_prompts(
    concepts: pd.DataFrame, src: str, tgt: str, *, latent: str = "en", shots: int = SHOTS, seed: int = 42
) -> list[LensPrompt]:
    """``{Src}: "w_src" - {Tgt}: "w_tgt"`` lines, ``shots`` demonstrations, the query ending
    after the opening quote (no trailing space). Rows whose latent word is a substring of the
    target word are dropped (target != latent), as in the original."""
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
    answers = list(rows[tgt])
    prompts = []
    for i, row in rows.iterrows():
        demos = _demonstrations(rng, answers, cast(int, i), shots)  # a RangeIndex
        lines = "".join(f'{src_name}: "{rows.at[j, src]}" - {tgt_name}: "{rows.at[j, tgt]}"\n' for j in demos)
        text = lines + f'{src_name}: "{row[src]}" - {tgt_name}: "'
        prompts.append(
            LensPrompt(
                task,
                src,
                tgt,
                latent,
                row["concept"],
                text,
                row[tgt],
                row[latent],
                len(demos),
                row[src],
                tuple(answers[j] for j in demos),
            )
        )
    return prompts


def cloze_prompts(
    concepts: pd.DataFrame, cloze: pd.DataFrame, lang: str, *, latent: str = "en", shots: int = SHOTS, seed: int = 42
) -> list[LensPrompt]:
    """Definition sentences with the word masked as ``"___"``: ``shots`` demonstrations with their
    answer, then the query ending in ``{Answer}: "``. One consistent format per language (the
    original's zh file mixed full-width and ASCII colons)."""
    language = get_language(lang)
    sentences = cloze[cloze["lang"] == lang].merge(concepts[["concept", lang, latent]], on="concept")
    if sentences.empty:
        raise TaskRequestError(_no_cloze_message(lang, cloze))
    sentences = sentences.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    answers = list(sentences[lang])
    prompts = []
    for i, row in sentences.iterrows():
        demos = _demonstrations(rng, answers, cast(int, i), shots)  # a RangeIndex
        lines = "".join(f'{sentences.at[j, "sentence"]} {language.answer}: "{answers[j]}".\n' for j in demos)
        text = lines + f'{row["sentence"]} {language.answer}: "'
        prompts.append(
            LensPrompt(
                "cloze",
                lang,
                lang,
                latent,
                row["concept"],
                text,
                row[lang],
                row[latent],
                len(demos),
                "",
                tuple(answers[j] for j in demos),
            )
        )
    return prompts


def _no_cloze_message(lang: str, cloze: pd.DataFrame) -> str:
    return (
        f"no cloze sentences for {lang!r} in {CLOZE}; "
        f"languages with cloze data: {', '.join(sorted(set(cloze['lang'])))}. "
        f"Add rows 'concept,{lang},sentence with \"___\"' to that file, or use --task translation"
    )


def check_request(task: str, langs: list[str], *, src: str | None = None, cloze: pd.DataFrame | None = None) -> None:
    """Refuse, before any model loads, a request the prompts cannot serve: an unknown task, the
    cloze task for a language without cloze sentences, or a translation whose source is its
    target (that is the repetition task)."""
    if task not in ("translation", "repetition", "cloze"):
        raise TaskRequestError(f"unknown task {task!r}; use cloze (PROM's protocol), translation or repetition")
    for lang in langs:
        if task == "cloze" and cloze is not None and lang not in set(cloze["lang"]):
            raise TaskRequestError(_no_cloze_message(lang, cloze))
        if task == "translation" and src == lang:
            raise TaskRequestError(
                f"the source language {src!r} is the target: "
                "the prompt would ask to repeat the word, not translate it; "
                "use --task repetition if repetition is meant, or another --source"
            )


def build_prompts(
    task: Task,
    concepts: pd.DataFrame,
    lang: str,
    *,
    src: str | None = None,
    latent: str = "en",
    cloze: pd.DataFrame | None = None,
    shots: int = SHOTS,
    seed: int = 42,
) -> list[LensPrompt]:
    """Prompts for one target language. Translation defaults to :func:`default_source`."""
    check_request(task, [lang], src=src, cloze=cloze)
    if task == "cloze":
        if cloze is None:
            raise ValueError("the cloze task needs cloze sentences")
        return cloze_prompts(concepts, cloze, lang, latent=latent, shots=shots, seed=seed)
    if task == "repetition":
        return translation_prompts(concepts, lang, lang, latent=latent, shots=shots, seed=seed)
    return translation_prompts(
        concepts, src or default_source(lang, latent), lang, latent=latent, shots=shots, seed=seed
    )


def default_source(lang: str, latent: str = "en") -> str:
    """Russian, or French for a Cyrillic target: the first of the two in a script other than the
    target's. A source in the target's script can spell the answer (with French as the source,
    about half of the kept es, it and pt prompts had a target token shared with the French word),
    so the default never shares the target's script and the copy rule costs it no prompt."""
    script = get_language(lang).script
    return next(code for code in ("ru", "fr") if code not in (lang, latent) and get_language(code).script != script)
