"""Perplexity per language on held-out text, the measure of linguistic competence in Zhang et
al. 2024 (Tables 1, 2, 5; docs/methods/linguistic-regions.md).

``perplexity = exp(sum of token NLLs / number of predicted tokens)`` over all held-out
sentences of a language (each sentence its own sequence; its first token is not predicted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from probes.backend import Backend
from probes.backend.resume import collect
from probes.backend.store import Run
from probes.inputs.lm_corpus import lm_batches
from probes.registry import register_probe

PERPLEXITY_COLUMNS = {
    "lang": "language of the held-out sentences",
    "n_sentences": "sentences evaluated",
    "n_tokens": "predicted tokens (each sentence's first token has no context and is not predicted)",
    "nll": "mean negative log-likelihood per predicted token (nats)",
    "perplexity": "exp(nll)",
    "item": "run key (the language)",
}


def language_perplexity(
    backend: Backend, texts: Sequence[str], *, batch_size: int = 8, max_tokens: int = 512
) -> dict[str, float]:
    """Token-weighted perplexity of one language's sentences."""
    nll_sum, n_tokens, n_sentences = 0.0, 0, 0
    with torch.no_grad():
        for batch in lm_batches(backend, texts, batch_size=batch_size, max_tokens=max_tokens):
            mean_nll = float(backend._loss(batch.enc, batch.labels))  # the backend's own mean next-token loss
            nll_sum += mean_nll * batch.n_tokens
            n_tokens += batch.n_tokens
            n_sentences += batch.n_sentences
    if n_tokens == 0:
        raise ValueError("no sentence has two tokens or more; nothing to evaluate")
    nll = nll_sum / n_tokens
    return {"n_sentences": n_sentences, "n_tokens": n_tokens, "nll": nll, "perplexity": math.exp(min(nll, 700.0))}


@register_probe(
    "perplexity", paper="Zhang et al. 2024, Tables 1, 2, 5 (PPL)", columns=PERPLEXITY_COLUMNS, family="regions"
)
def run_perplexity(
    backend: Backend,
    texts: Mapping[str, Sequence[str]],
    *,
    batch_size: int = 8,
    max_tokens: int = 512,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per language (``texts``: language -> held-out sentences). With ``run``, finished
    languages are stored as they complete and skipped on a re-run."""

    def compute(batch: list[str]) -> pd.DataFrame:
        (lang,) = batch
        measured = language_perplexity(backend, texts[lang], batch_size=batch_size, max_tokens=max_tokens)
        return pd.DataFrame([{"lang": lang, **measured, "item": lang}])

    return collect(
        list(texts),
        compute,
        key=str,
        columns=list(PERPLEXITY_COLUMNS),
        run=run,
        desc=f"perplexity {backend.model_name}",
        unit="lang",
        progress=progress,
    )
