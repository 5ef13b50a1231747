"""Corpus chrF from per-sentence statistics equals sacrebleu's public ``corpus_score``."""

from __future__ import annotations

import numpy as np
import pytest
from sacrebleu.metrics import CHRF

from analyses.stats.chrf import corpus_chrf

HYPS = ["hola mundo", "el gato negro", "tres", "", "猫は黒い", "a", "the cat sat on the mat."]
REFS = ["hola mundo!", "un gato negro", "dos", "algo", "黒い猫", "ab", "a cat sat on a mat"]


def test_whole_corpus_equals_sacrebleu():
    point, boot = corpus_chrf(HYPS, REFS, n_boot=0)
    assert point == pytest.approx(CHRF().corpus_score(HYPS, [REFS]).score, abs=1e-9) and boot.shape == (0,)


@pytest.mark.parametrize("pair", [(["", ""], ["x", "y"]), (["abc"], ["abc"]), (["ab"], ["xyz"]), (["x"], [""])])
def test_edge_cases_equal_sacrebleu(pair):
    hyps, refs = pair
    assert corpus_chrf(hyps, refs, n_boot=0)[0] == pytest.approx(CHRF().corpus_score(hyps, [refs]).score, abs=1e-9)


def test_each_replicate_is_sacrebleu_on_its_resample():
    point, boot = corpus_chrf(HYPS, REFS, n_boot=30, seed=3)
    draws = np.random.default_rng(3).integers(0, len(HYPS), size=(30, len(HYPS)))  # the documented resampling
    expected = [CHRF().corpus_score([HYPS[i] for i in d], [[REFS[i] for i in d]]).score for d in draws]
    assert boot == pytest.approx(expected, abs=1e-9)
    assert boot.min() <= point <= boot.max() and len(set(boot.round(6))) > 5
