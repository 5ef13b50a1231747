"""Accuracy on templated arithmetic word problems (:mod:`probes.inputs.arithmetic`) by greedy
generation: the prompt formatted as in fine-tuning, the number read from the output
(:func:`probes.inputs.arithmetic.extract_number`) and compared with the answer (the task of the
layer-swapping replay: Bandarkar et al., ICLR 2025)."""

from __future__ import annotations

import pandas as pd

from probes.backend import Backend
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.inputs.arithmetic import extract_number, prompt_ids
from probes.registry import register_probe

COLUMNS = {
    "model": "model display name",
    "lang": "ISO 639-1 code of the problem's language",
    "id": "problem id (shared by the translations of a problem)",
    "kind": "problem kind (add, sub, mul, div, class, pages, two_step, bags)",
    "answer": "the correct numeric answer",
    "prediction": "number read from the output (last number of its first paragraph); NaN if none",
    "correct": "prediction equals the answer",
    "output": "the generated text (greedy)",
    "n_new_tokens": "number of generated tokens",
    "item": "run key (lang|id)",
}


@register_probe(
    "arithmetic",
    paper="Bandarkar et al., ICLR 2025 (layer swapping; MGSM-style accuracy)",
    columns=COLUMNS,
    family="layer_swap",
)
def run_arithmetic(
    backend: Backend,
    problems: pd.DataFrame,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 48,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Greedy answers to ``problems`` (from :func:`probes.inputs.arithmetic.load_problems`) and
    whether each is right; with ``run``, finished batches are stored and skipped on a re-run."""
    # similar lengths in a batch waste less padding
    ordered = sorted(problems.to_dict("records"), key=lambda problem: len(problem["question"]))
    eos = backend.tokenizer.eos_token_id

    def compute(batch: list[dict]) -> pd.DataFrame:
        enc = backend.encode([prompt_ids(backend.tokenizer, problem["question"]) for problem in batch])
        # only the ids are used: nucleus_p=0 skips the per-step nucleus sort over the vocabulary,
        # which costs more than the forward pass itself on a CPU with a 262k vocabulary
        new_ids = backend.generate(enc, max_new_tokens=max_new_tokens, statistics=False).new_ids
        rows = []
        for problem, generated in zip(batch, new_ids):
            ids = _answer_ids(generated.tolist(), eos, backend.pad_id)
            output = backend.tokenizer.decode(ids, skip_special_tokens=True)
            prediction = extract_number(output)
            rows.append(
                {
                    "model": backend.model_name,
                    "lang": problem["lang"],
                    "id": problem["id"],
                    "kind": problem.get("kind", ""),
                    "answer": float(problem["answer"]),
                    "prediction": prediction if prediction is not None else float("nan"),
                    "correct": prediction is not None and abs(prediction - float(problem["answer"])) < 1e-9,
                    "output": output,
                    "n_new_tokens": len(ids),
                    "item": _item(problem),
                }
            )
        return pd.DataFrame(rows, columns=list(COLUMNS))

    return collect(
        ordered,
        compute,
        key=_item,
        columns=list(COLUMNS),
        run=run,
        batch_size=batch_size,
        desc=f"arithmetic {backend.model_name}",
        unit="problem",
        progress=progress,
    )


def _item(problem: dict) -> str:
    return f"{problem['lang']}|{problem['id']}"


def _answer_ids(generated: list[int], eos: int | None, pad: int) -> list[int]:
    """The generated ids up to the first EOS, without padding."""
    if eos is not None and eos in generated:
        generated = generated[: generated.index(eos)]
    return [i for i in generated if i != pad]
