"""Perplexity per language (Zhang et al. 2024's measure, spec 4.3) against a direct computation
with plain ``transformers`` on one unpadded sentence at a time."""

from __future__ import annotations

import math

import pytest
import torch

from probes.backend.store import ResultsStore, provenance
from probes.perplexity import PERPLEXITY_COLUMNS, language_perplexity, run_perplexity
from tests.conftest import CORPUS, tiny_backend, tiny_hf_model, tiny_tokenizer

TEXTS = list(dict.fromkeys(CORPUS))  # five sentences of different lengths


def _direct(texts: list[str], max_tokens: int) -> tuple[float, int]:
    """Token-weighted perplexity: every sentence alone, every token after the first predicted."""
    model, tokenizer = tiny_hf_model("llama"), tiny_tokenizer()
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"][:max_tokens]])
            logits = model(input_ids=ids).logits[0, :-1]
            nll += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    return math.exp(nll / count), count


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_perplexity_equals_the_direct_computation_with_and_without_padding(backend_name, batch_size):
    backend = tiny_backend("llama", backend=backend_name)
    expected, count = _direct(TEXTS, 12)
    found = language_perplexity(backend, TEXTS, batch_size=batch_size, max_tokens=12)
    assert found["n_tokens"] == count and found["n_sentences"] == len(TEXTS)
    assert found["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert found["nll"] == pytest.approx(math.log(expected), rel=1e-4)


def test_table_has_one_row_per_language_and_resumes(tmp_path):
    backend = tiny_backend("llama")
    texts = {"en": TEXTS[:1] * 2, "ru": TEXTS[3:4] * 2}
    run = ResultsStore(tmp_path).run(provenance("perplexity", {"test": 1}, backend.describe()))
    table = run_perplexity(backend, texts, run=run, progress=False)
    assert list(table.columns) == list(PERPLEXITY_COLUMNS) and table["lang"].tolist() == ["en", "ru"]
    assert table.set_index("lang").loc["en", "perplexity"] == pytest.approx(
        language_perplexity(backend, texts["en"])["perplexity"]
    )
    again = run_perplexity(
        backend, {**texts, "fr": TEXTS[1:2]}, run=ResultsStore(tmp_path).run(run.prov), progress=False
    )
    assert sorted(again["lang"]) == ["en", "fr", "ru"]


def test_nothing_to_evaluate_fails_clearly():
    with pytest.raises(ValueError, match="two tokens or more"):
        language_perplexity(tiny_backend("llama"), ["a"])
