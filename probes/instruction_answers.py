"""Answers to instructions: greedy generation from the same prompt format the fine-tuning
driver trains on, for the evaluation of instruction-data recipes (PLUG, Zhang et al. 2023,
Sec. 4: answer the held-out instructions of each target language, then judge the answers;
docs/methods/plug-recipes.md).

The model input is exactly the prompt part of a training row of
:func:`probes.inputs.instruction_data.tokenize_pair` (chat template, else ``prompt\\n\\n``), so a model
fine-tuned by the driver is asked the way it was taught. The completion is the text up to the
first special token (EOS or end of turn).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from probes.backend import Backend
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.confusion import completion_extent
from probes.inputs.instruction_data import Template, pairs_for, tokenize_pair
from probes.registry import register_probe

ANSWER_COLUMNS = {
    "item": "run key of the instruction (lang|id)",
    "model": "model name",
    "lang": "language of the instruction and of the reference answer",
    "id": "instruction id in the parallel set",
    "prompt": "the instruction",
    "reference": "the reference response of the parallel set",
    "completion": "the generated answer (up to the first special token)",
    "n_new_tokens": "tokens generated, through the EOS when there is one",
    "finished": "the model ended its answer (EOS) within max_new_tokens",
}


def prompt_ids(backend: Backend, prompt: str, template: Template = "auto") -> list[int]:
    """The ids of ``prompt`` as a training row starts (the driver's format, before the response):
    the positions of :func:`tokenize_pair` that carry no label."""
    row = tokenize_pair(backend.tokenizer, prompt, "-", template=template)
    return [i for i, label in zip(row.input_ids, row.labels) if label == -100]


def _answer_frame(
    backend: Backend, batch: Sequence[tuple[str, str, str, str, list[int]]], max_new_tokens: int, special: set[int]
) -> pd.DataFrame:
    """The greedy answers of one batch of rows ``(lang, id, prompt, reference, prompt ids)``."""
    generation = backend.generate(
        backend.encode([row[4] for row in batch]), max_new_tokens=max_new_tokens, statistics=False
    )
    rows = []
    for (lang, i, prompt, reference, _), new_ids in zip(batch, generation.new_ids.tolist()):
        completion, n_generated, _ = completion_extent(backend, new_ids)
        rows.append(
            {
                "item": f"{lang}|{i}",
                "model": backend.model_name,
                "lang": lang,
                "id": i,
                "prompt": prompt,
                "reference": reference,
                "completion": completion,
                "n_new_tokens": n_generated,
                "finished": any(t in special for t in new_ids[:n_generated]),
            }
        )
    return pd.DataFrame.from_records(rows, columns=list(ANSWER_COLUMNS))


@register_probe(
    "instruction-answers",
    paper="PLUG (Zhang et al. 2023) Sec. 4 evaluation protocol",
    columns=ANSWER_COLUMNS,
    family="recipes",
)
def run_answers(
    backend: Backend,
    table: pd.DataFrame,
    langs: Sequence[str],
    ids: Sequence[str],
    *,
    max_new_tokens: int = 256,
    template: Template = "auto",
    batch_size: int = 8,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Greedy answers to the instructions ``ids`` of ``table`` (``probes.inputs.instruction_data``
    layout) in each language of ``langs``; one row per (lang, id), columns in ``ANSWER_COLUMNS``.
    With ``run``, finished batches are stored and skipped on a re-run."""
    todo = [
        (lang, i, prompt, reference, prompt_ids(backend, prompt, template))
        for lang in langs
        for i, (prompt, reference) in zip(ids, pairs_for(table, lang, ids))
    ]
    todo.sort(key=lambda row: len(row[4]))  # similar lengths: little padding
    special = set(backend.tokenizer.all_special_ids)
    return collect(
        todo,
        lambda batch: _answer_frame(backend, batch, max_new_tokens, special),
        key=lambda row: f"{row[0]}|{row[1]}",
        columns=list(ANSWER_COLUMNS),
        run=run,
        batch_size=batch_size,
        desc=f"answers {backend.model_name}",
        unit="answer",
        progress=progress,
    )
