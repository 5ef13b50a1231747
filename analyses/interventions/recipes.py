"""Cross-lingual instruction-data recipes (Zhang et al. 2023, *PLUG*, seed 000 second half; spec 6b).

Notation of the paper: ``x`` instruction, ``y`` response, ``p`` pivot language (English), ``t``
target language; ``D(a, b)`` is the set of (prompt ``a``, response ``b``) pairs. Over the same
parallel input, the five training sets compared in the paper's Table 1 are:

* ``pivot-only``: ``D(x_p, y_p)``;
* ``mono`` (monolingual response): ``D(x_p, y_p) ∪ D(x_t, y_t)``;
* ``code-switch``: ``D(x_p, y_p) ∪ D(x_t, y_t) ∪ D(x_p, y_t) ∪ D(x_t, y_p)``;
* ``aux-translation``: ``D(x_p, y_p) ∪ D(x_t, y_t) ∪ D([P_trans; x_p], x_t) ∪ D([P_trans; y_p], y_t)``;
* ``plug``: ``D(x_p, y_p) ∪ D(x_t, [x_p; y_p; y_t])``.

Each recipe is one function of one :class:`ParallelItem` (an id's pivot pair and target pair)
returning :class:`RecipeItem` records (``id, recipe, part, lang, prompt, response``); the
fine-tuning driver (:mod:`analyses.interventions.finetune`) applies the model's chat template
(or the plain ``prompt\\n\\nresponse<eos>`` format when the tokenizer has none) and takes the
loss on the response only. With several target languages the pivot pairs ``D(x_p, y_p)`` enter
once, not once per language. ``code-switch`` is taken literally from the paper: an English
instruction is paired with both its English and its target response, with no language cue.

PLUG response format (``part = "x_t->plug"``), three sections separated by a blank line, each
opened by a tag named after the language in English::

    English instruction: {x_p}

    English response: {y_p}

    Spanish response: {y_t}

(the official code, ``src/model/extract_response_from_bilingual_output.py`` of ytyz1307zzh/PLUG,
labels the sections ``English response:`` / ``Respuesta en español:``; an
English label for the target keeps the tags in the pivot language). ``P_trans`` is
``Translate the following text into {Target}.\\n\\n``. At inference :func:`strip_pivot` returns
the part a user is shown: the target section, also when the model drops or garbles the tags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from analyses.interventions.finetune import FinetuneConfig, FinetuneResult, finetune
from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language
from probes.backend.store import write_text_atomic
from probes.inputs.instruction_data import (
    HELD_OUT,
    INSTRUCTIONS,
    load_instructions,
    pairs_for,
    parallel_ids,
    split_held_out,
)
from probes.language_id import predict_language

PIVOT = "en"
TRANSLATE_PROMPT = "Translate the following text into {language}.\n\n{text}"
SECTION_SEPARATOR = "\n\n"
RECIPE_FILE = "recipe.json"


@dataclass(frozen=True)
class ParallelItem:
    """One instruction id: its ``(instruction, response)`` in the pivot and in the target language."""

    id: str
    lang: str
    x_t: str
    y_t: str
    x_p: str
    y_p: str
    pivot: str = PIVOT


@dataclass(frozen=True)
class RecipeItem:
    """One training pair. ``part`` names the paper's set it belongs to (``x_p->y_p``,
    ``x_t->y_t``, ``x_p->y_t``, ``x_t->y_p``, ``trans(x_p)->x_t``, ``trans(y_p)->y_t``,
    ``x_t->plug``); ``lang`` is the target language (the pivot for ``x_p->y_p``)."""

    id: str
    recipe: str
    part: str
    lang: str
    prompt: str
    response: str


def _pair(
    item: ParallelItem, recipe: str, part: str, prompt: str, response: str, lang: str | None = None
) -> RecipeItem:
    return RecipeItem(item.id, recipe, part, lang or item.lang, prompt, response)


def _name(code: str) -> str:
    return get_language(code).english


# ---- PLUG response format -------------------------------------------------------------------
def plug_tags(target: str, pivot: str = PIVOT) -> tuple[str, str, str]:
    """The three section tags of a PLUG response: pivot instruction, pivot response, target response."""
    return f"{_name(pivot)} instruction:", f"{_name(pivot)} response:", f"{_name(target)} response:"


def plug_response(x_p: str, y_p: str, y_t: str, target: str, pivot: str = PIVOT) -> str:
    """``[x_p; y_p; y_t]`` with the tags of :func:`plug_tags`, sections separated by a blank line."""
    tags = plug_tags(target, pivot)
    return SECTION_SEPARATOR.join(f"{tag} {text.strip()}" for tag, text in zip(tags, (x_p, y_p, y_t)))


# ---- the five recipes -----------------------------------------------------------------------
def pivot_only(item: ParallelItem) -> list[RecipeItem]:
    """``D(x_p, y_p)``."""
    return [_pair(item, "pivot-only", "x_p->y_p", item.x_p, item.y_p, lang=item.pivot)]


def mono(item: ParallelItem) -> list[RecipeItem]:
    """``D(x_p, y_p) ∪ D(x_t, y_t)``."""
    return [
        _pair(item, "mono", "x_p->y_p", item.x_p, item.y_p, lang=item.pivot),
        _pair(item, "mono", "x_t->y_t", item.x_t, item.y_t),
    ]


def code_switch(item: ParallelItem) -> list[RecipeItem]:
    """``D(x_p, y_p) ∪ D(x_t, y_t) ∪ D(x_p, y_t) ∪ D(x_t, y_p)``."""
    return [
        _pair(item, "code-switch", "x_p->y_p", item.x_p, item.y_p, lang=item.pivot),
        _pair(item, "code-switch", "x_t->y_t", item.x_t, item.y_t),
        _pair(item, "code-switch", "x_p->y_t", item.x_p, item.y_t),
        _pair(item, "code-switch", "x_t->y_p", item.x_t, item.y_p),
    ]


def aux_translation(item: ParallelItem) -> list[RecipeItem]:
    """``D(x_p, y_p) ∪ D(x_t, y_t) ∪ D([P_trans; x_p], x_t) ∪ D([P_trans; y_p], y_t)``."""
    target = _name(item.lang)
    return [
        _pair(item, "aux-translation", "x_p->y_p", item.x_p, item.y_p, lang=item.pivot),
        _pair(item, "aux-translation", "x_t->y_t", item.x_t, item.y_t),
        _pair(
            item,
            "aux-translation",
            "trans(x_p)->x_t",
            TRANSLATE_PROMPT.format(language=target, text=item.x_p),
            item.x_t,
        ),
        _pair(
            item,
            "aux-translation",
            "trans(y_p)->y_t",
            TRANSLATE_PROMPT.format(language=target, text=item.y_p),
            item.y_t,
        ),
    ]


def plug(item: ParallelItem) -> list[RecipeItem]:
    """``D(x_p, y_p) ∪ D(x_t, [x_p; y_p; y_t])``."""
    return [
        _pair(item, "plug", "x_p->y_p", item.x_p, item.y_p, lang=item.pivot),
        _pair(item, "plug", "x_t->plug", item.x_t, plug_response(item.x_p, item.y_p, item.y_t, item.lang, item.pivot)),
    ]


Recipe = Callable[[ParallelItem], list[RecipeItem]]
RECIPES: dict[str, Recipe] = {
    "pivot-only": pivot_only,
    "mono": mono,
    "code-switch": code_switch,
    "aux-translation": aux_translation,
    "plug": plug,
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
    return RECIPES[name]


# ---- building a training set ----------------------------------------------------------------
def parallel_items(table: pd.DataFrame, langs: Sequence[str], pivot: str = PIVOT) -> list[ParallelItem]:
    """For each target language, every id of the instruction ``table`` that also has a pivot
    row, as :class:`ParallelItem` (ids in file order, languages in the order given)."""
    if pivot in langs:
        raise ValueError(f"the pivot {pivot!r} cannot also be a target language; drop it from langs")
    items = []
    for lang in langs:
        ids = parallel_ids(table, [pivot, lang])
        if not ids:
            raise DataFormatError(f"no instruction id has rows in both {pivot!r} and {lang!r}")
        for i, (x_t, y_t), (x_p, y_p) in zip(ids, pairs_for(table, lang, ids), pairs_for(table, pivot, ids)):
            items.append(ParallelItem(i, lang, x_t, y_t, x_p, y_p, pivot))
    return items


def build_recipe(name: str, items: Iterable[ParallelItem]) -> list[RecipeItem]:
    """The training set of recipe ``name`` over ``items``; exact duplicate pairs (the pivot pairs
    shared by several target languages) are kept once, at their first place."""
    recipe = get_recipe(name)
    seen: set[tuple[str, str]] = set()
    out = []
    for item in items:
        for record in recipe(item):
            if (record.prompt, record.response) not in seen:
                seen.add((record.prompt, record.response))
                out.append(record)
    return out


def write_jsonl(records: Sequence[RecipeItem], path: str | Path) -> Path:
    """One JSON object per line (``id, recipe, part, lang, prompt, response``); the driver's
    :func:`~analyses.interventions.finetune.load_jsonl` reads ``prompt`` and ``response``."""
    path = Path(path)
    write_text_atomic("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records), path)
    return path


def read_recipe_card(model_dir: str | Path) -> dict[str, object] | None:
    """The ``recipe.json`` a recipe training run leaves in its model folder, if any."""
    path = Path(model_dir) / RECIPE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_recipe_card(
    model_dir: str | Path, name: str, langs: Sequence[str], pivot: str, records: Sequence[RecipeItem], data: str | Path
) -> Path:
    """Record which recipe trained the model in ``model_dir`` (read back by the evaluation)."""
    parts = pd.Series([r.part for r in records]).value_counts().to_dict()
    card = {
        "recipe": name,
        "langs": list(langs),
        "pivot": pivot,
        "n_items": len(records),
        "parts": parts,
        "data": str(data),
    }
    path = Path(model_dir) / RECIPE_FILE
    write_text_atomic(json.dumps(card, indent=2), path)
    return path


def recipe_training_set(
    name: str, langs: Sequence[str], data: str | Path = INSTRUCTIONS, pivot: str = PIVOT, n_held_out: int = HELD_OUT
) -> list[RecipeItem]:
    """Recipe ``name`` over the training ids of the instruction file ``data`` (the last
    ``n_held_out`` ids, the evaluation's, never enter)."""
    table = load_instructions(data, [pivot, *langs])
    train = split_held_out(table, n_held_out)[0] if n_held_out else table
    return build_recipe(name, parallel_items(train, langs, pivot))


def train_recipe(
    model: str | Path,
    name: str,
    langs: Sequence[str],
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    data: str | Path = INSTRUCTIONS,
    pivot: str = PIVOT,
    n_held_out: int = HELD_OUT,
    resume: bool = True,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``model`` with the driver on :func:`recipe_training_set` and leave
    ``recipe.json`` in the model folder ``out`` (``config``: the driver's defaults when ``None``)."""
    records = recipe_training_set(name, langs, data, pivot, n_held_out)
    result = finetune(
        model,
        [(r.prompt, r.response) for r in records],
        out,
        config or FinetuneConfig(),
        resume=resume,
        progress=progress,
    )
    write_recipe_card(out, name, langs, pivot, records, data)
    return result


# ---- the pivot part of a PLUG answer --------------------------------------------------------
StripHow = Literal["tagged", "lid", "untagged", "not_found"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


@dataclass(frozen=True)
class StrippedAnswer:
    """The part of an answer a user is shown, and how it was found:

    * ``tagged``: the text after the target tag, up to any further tag;
    * ``lid``: no target tag; the text from the first sentence that fastText does not label as
      the pivot language, after the last pivot tag if any;
    * ``untagged``: no tag and no pivot-language sentence first: the answer unchanged;
    * ``not_found``: only pivot-language text: the whole answer without its tags (what a user
      would see; it is judged as a wrong-language answer, not skipped).
    """

    text: str
    how: StripHow


def _tag_pattern(tag: str) -> re.Pattern[str]:
    """A tag, case-insensitive, with any spacing, an ASCII or full-width colon and markdown
    emphasis or heading marks around it (``**English response:**``, ``## english response :``)."""
    words = r"\s+".join(re.escape(w) for w in tag.removesuffix(":").split())
    return re.compile(rf"[#*_]*\s*{words}\s*[*_]*\s*[:：]\s*[*_]*", re.IGNORECASE)


def _segments(text: str) -> list[str]:
    return [s for line in text.split("\n") for s in _SENTENCE_END.split(line) if s.strip()]


def _is_pivot(segment: str, pivot: str) -> bool:
    return predict_language(segment)[0] == pivot


def strip_pivot(answer: str, target: str, pivot: str = PIVOT) -> StrippedAnswer:
    """The target-language part of a PLUG answer (see :class:`StrippedAnswer` for the rules).
    Other recipes' answers pass through unchanged when they hold no tag and start in the target."""
    instruction_tag, pivot_tag, target_tag = (_tag_pattern(t) for t in plug_tags(target, pivot))
    any_tag = re.compile("|".join(p.pattern for p in (instruction_tag, pivot_tag, target_tag)), re.IGNORECASE)
    found = target_tag.search(answer)
    if found:
        rest = answer[found.end() :]
        stop = any_tag.search(rest)
        return StrippedAnswer((rest[: stop.start()] if stop else rest).strip(), "tagged")
    last_pivot = None
    for match in any_tag.finditer(answer):
        last_pivot = match
    body = answer[last_pivot.end() :] if last_pivot else answer
    segments = _segments(body)
    first_target = next((i for i, s in enumerate(segments) if not _is_pivot(s, pivot)), None)
    if first_target is None:
        return StrippedAnswer(any_tag.sub(" ", answer).strip(), "not_found")
    if first_target == 0 and last_pivot is None:
        return StrippedAnswer(answer.strip(), "untagged")
    start = body.find(segments[first_target])
    return StrippedAnswer(body[start:].strip(), "lid")
