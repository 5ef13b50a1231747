"""Corpus chrF (Popović 2015, as sacrebleu computes chrF2: character 1- to 6-grams, whitespace
dropped, beta = 2) with a bootstrap over sentences, from per-sentence sufficient statistics.

Corpus chrF is a function of n-gram counts summed over the sentences, so a bootstrap replicate
is one weighted sum of the per-sentence counts: the n-grams are extracted once (with sacrebleu's
public :func:`~sacrebleu.metrics.helpers.extract_all_char_ngrams`), not once per replicate as
``CHRF().corpus_score`` on each resample would (about 2600 times slower). ``tests/analyses/stats/
test_chrf.py`` checks the score against sacrebleu's public ``corpus_score`` on whole corpora and
on resamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics.helpers import extract_all_char_ngrams

from analyses.stats.intervals import bootstrap_indices

CHAR_ORDER = 6
BETA = 2


def sentence_statistics(hypothesis: str, reference: str, order: int = CHAR_ORDER) -> np.ndarray:
    """``(order, 3)``: per n-gram order 1..``order`` the hypothesis n-grams (counted only where the
    reference has n-grams of that order, as sacrebleu does), the reference n-grams and the matches."""
    pairs = zip(extract_all_char_ngrams(hypothesis, order), extract_all_char_ngrams(reference, order), strict=True)
    return np.array(
        [[sum(h.values()) if r else 0, sum(r.values()), sum((h & r).values())] for h, r in pairs], dtype=np.int64
    )


def chrf_from_statistics(stats: np.ndarray, beta: float = BETA) -> np.ndarray:
    """chrF in [0, 100] from summed statistics ``(..., order, 3)``: precision and recall averaged
    over the orders where both hypothesis and reference have n-grams (sacrebleu's default
    "effective order"), then their F-beta."""
    n_hyp, n_ref, n_match = (stats[..., i].astype(float) for i in range(3))
    effective = (n_hyp > 0) & (n_ref > 0)
    orders = effective.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(effective, n_match / n_hyp, 0.0).sum(-1) / orders
        recall = np.where(effective, n_match / n_ref, 0.0).sum(-1) / orders
        f = (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
    return 100 * np.nan_to_num(np.where(orders > 0, f, 0.0))


def corpus_chrf(
    hypotheses: Sequence[str], references: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """Corpus chrF and ``n_boot`` bootstrap replicates over sentences (resampling the sentence
    statistics, the route of sacrebleu's own bootstrap); no replicates for ``n_boot = 0``."""
    stats = np.stack([sentence_statistics(h, r) for h, r in zip(hypotheses, references, strict=True)])
    point = float(chrf_from_statistics(stats.sum(0)))
    draws = bootstrap_indices(len(stats), n_boot, seed)
    weights = np.stack([np.bincount(d, minlength=len(stats)) for d in draws]) if n_boot else np.zeros((0, len(stats)))
    return point, chrf_from_statistics(np.einsum("bn,noc->boc", weights, stats))
